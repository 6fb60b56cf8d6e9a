package console

// Large characters for the pairing code: a 5×7 dot font drawn with the
// half-block characters the Linux console's fonts have (▀ ▄ █, the same
// ones the QR code uses; package qrtext), two dots a character cell, one
// above the other. A glyph is 5 cells wide and 4 rows high (a blank dot
// row on top), so four of them with a space between take 23 columns:
// "K7Q2" and "MXW9" fit beside the QR code on an 80×24 screen.

import "strings"

// bigGlyphs holds the code's characters (0-9, A-Z without I L O U, as in
// protocol.ParseUserCode, and the other letters for robustness) and '-'.
// '#' is a dot.
var bigGlyphs = map[rune][7]string{
	'0': {" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "},
	'1': {"  #  ", " ##  ", "# #  ", "  #  ", "  #  ", "  #  ", "#####"},
	'2': {" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"},
	'3': {"#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "},
	'4': {"   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "},
	'5': {"#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "},
	'6': {"  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "},
	'7': {"#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "},
	'8': {" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "},
	'9': {" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "},
	'A': {" ### ", "#   #", "#   #", "#####", "#   #", "#   #", "#   #"},
	'B': {"#### ", "#   #", "#   #", "#### ", "#   #", "#   #", "#### "},
	'C': {" ### ", "#   #", "#    ", "#    ", "#    ", "#   #", " ### "},
	'D': {"#### ", "#   #", "#   #", "#   #", "#   #", "#   #", "#### "},
	'E': {"#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#####"},
	'F': {"#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#    "},
	'G': {" ### ", "#   #", "#    ", "# ###", "#   #", "#   #", " ####"},
	'H': {"#   #", "#   #", "#   #", "#####", "#   #", "#   #", "#   #"},
	'I': {" ### ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "},
	'J': {"  ###", "   # ", "   # ", "   # ", "   # ", "#  # ", " ##  "},
	'K': {"#   #", "#  # ", "# #  ", "##   ", "# #  ", "#  # ", "#   #"},
	'L': {"#    ", "#    ", "#    ", "#    ", "#    ", "#    ", "#####"},
	'M': {"#   #", "## ##", "# # #", "# # #", "#   #", "#   #", "#   #"},
	'N': {"#   #", "#   #", "##  #", "# # #", "#  ##", "#   #", "#   #"},
	'O': {" ### ", "#   #", "#   #", "#   #", "#   #", "#   #", " ### "},
	'P': {"#### ", "#   #", "#   #", "#### ", "#    ", "#    ", "#    "},
	'Q': {" ### ", "#   #", "#   #", "#   #", "# # #", "#  # ", " ## #"},
	'R': {"#### ", "#   #", "#   #", "#### ", "# #  ", "#  # ", "#   #"},
	'S': {" ####", "#    ", "#    ", " ### ", "    #", "    #", "#### "},
	'T': {"#####", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  "},
	'U': {"#   #", "#   #", "#   #", "#   #", "#   #", "#   #", " ### "},
	'V': {"#   #", "#   #", "#   #", "#   #", "#   #", " # # ", "  #  "},
	'W': {"#   #", "#   #", "#   #", "# # #", "# # #", "# # #", " # # "},
	'X': {"#   #", "#   #", " # # ", "  #  ", " # # ", "#   #", "#   #"},
	'Y': {"#   #", "#   #", " # # ", "  #  ", "  #  ", "  #  ", "  #  "},
	'Z': {"#####", "    #", "   # ", "  #  ", " #   ", "#    ", "#####"},
	'-': {"     ", "     ", "     ", "#####", "     ", "     ", "     "},
}

// bigRows is how many text rows a line of large characters takes.
const bigRows = 4

// bigWidth is the columns s takes in large characters.
func bigWidth(s string) int {
	n := len([]rune(s))
	if n == 0 {
		return 0
	}
	return 6*n - 1
}

// bigText draws s in large characters: bigRows lines of bigWidth(s)
// characters. A character without a glyph is drawn as a box, so nothing
// is silently left out.
func bigText(s string) []string {
	// Dot rows 0..7: a blank row on top, then the glyph's 7.
	dot := func(r rune, x, y int) bool {
		if y == 0 {
			return false
		}
		g, ok := bigGlyphs[r]
		if !ok {
			return x == 0 || x == 4 || y == 1 || y == 7
		}
		return g[y-1][x] == '#'
	}
	runes := []rune(s)
	out := make([]string, bigRows)
	for row := range bigRows {
		var b strings.Builder
		for i, r := range runes {
			if i > 0 {
				b.WriteByte(' ')
			}
			for x := range 5 {
				switch top, bottom := dot(r, x, 2*row), dot(r, x, 2*row+1); {
				case top && bottom:
					b.WriteRune('█')
				case top:
					b.WriteRune('▀')
				case bottom:
					b.WriteRune('▄')
				default:
					b.WriteByte(' ')
				}
			}
		}
		out[row] = b.String()
	}
	return out
}

// readBig reads large characters back (the inverse of bigText), for tests
// that check what a screen shows; "" when lines hold no known glyph run.
func readBig(lines []string) string {
	if len(lines) != bigRows {
		return ""
	}
	rows := make([][]rune, bigRows)
	for i, l := range lines {
		rows[i] = []rune(l)
	}
	var out strings.Builder
	for x := 0; x+5 <= len(rows[0]); x += 6 {
		found := false
		for r := range bigGlyphs {
			glyph := bigText(string(r))
			match := true
			for i := range bigRows {
				if string(rows[i][x:x+5]) != glyph[i] {
					match = false
					break
				}
			}
			if match {
				out.WriteRune(r)
				found = true
				break
			}
		}
		if !found {
			return ""
		}
	}
	return out.String()
}
