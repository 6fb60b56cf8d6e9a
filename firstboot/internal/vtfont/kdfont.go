package vtfont

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Linux console ioctls (linux/kd.h).
const (
	kdGetMode  = 0x4B3B // KDGETMODE: fails on anything but a virtual terminal
	kdText     = 0x00   // KD_TEXT
	kdFontOp   = 0x4B72 // KDFONTOP
	fontOpSet  = 0      // KD_FONT_OP_SET
	fontOpGet  = 1      // KD_FONT_OP_GET
	fontOpDflt = 2      // KD_FONT_OP_SET_DEFAULT: a kernel font by name
)

// consoleFontOp is struct console_font_op (linux/kd.h): five unsigned
// ints, then the data pointer (aligned as in C).
type consoleFontOp struct {
	op, flags, width, height, charcount uint32
	data                                *byte
}

// ErrNotVT is returned for a terminal that is not a Linux virtual
// terminal in text mode (a serial line, a pseudo-terminal).
var ErrNotVT = errors.New("not a Linux virtual terminal in text mode")

// VT is a Linux virtual terminal (tty1…) opened by the caller.
type VT struct{ f *os.File }

// OpenVT returns the virtual terminal on f, or ErrNotVT.
func OpenVT(f *os.File) (*VT, error) {
	mode, err := unix.IoctlGetInt(int(f.Fd()), kdGetMode)
	if err != nil || mode != kdText {
		return nil, fmt.Errorf("%s: %w", f.Name(), ErrNotVT)
	}
	return &VT{f: f}, nil
}

func (v *VT) fontOp(op *consoleFontOp) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, v.f.Fd(), kdFontOp, uintptr(unsafe.Pointer(op)))
	if errno != 0 {
		return errno
	}
	return nil
}

// Cell returns the current font's cell size.
func (v *VT) Cell() (width, height int, err error) {
	op := consoleFontOp{op: fontOpGet, width: 32, height: 32, charcount: 512}
	if err := v.fontOp(&op); err != nil {
		return 0, 0, fmt.Errorf("reading the console font of %s: %w", v.f.Name(), err)
	}
	return int(op.width), int(op.height), nil
}

// Text returns the terminal's size in characters.
func (v *VT) Text() (cols, rows int, err error) {
	ws, err := unix.IoctlGetWinsize(int(v.f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0, 0, fmt.Errorf("reading the size of %s: %w", v.f.Name(), err)
	}
	return int(ws.Col), int(ws.Row), nil
}

// Pixels returns the visible framebuffer size: the text size times the
// font's cell (what is left over at the edges, less than a cell, is not
// counted; /sys/class/graphics/fb0/virtual_size can be taller than what is
// shown).
func (v *VT) Pixels() (Pixels, error) {
	w, h, err := v.Cell()
	if err != nil {
		return Pixels{}, err
	}
	cols, rows, err := v.Text()
	if err != nil {
		return Pixels{}, err
	}
	return Pixels{cols * w, rows * h}, nil
}

// Set loads font f on the terminal. The kernel resizes the terminal and
// signals SIGWINCH to its foreground process group.
func (v *VT) Set(f Font) error {
	var op consoleFontOp
	var keep []byte
	if f.Builtin {
		keep = append([]byte(f.Name), 0)
		op = consoleFontOp{op: fontOpDflt, data: &keep[0]}
	} else {
		if f.PSF == nil {
			return fmt.Errorf("font %s has no glyphs", f.Name)
		}
		data, count := f.PSF.kernelData()
		keep = data
		op = consoleFontOp{op: fontOpSet, width: uint32(f.PSF.Width), height: uint32(f.PSF.Height), charcount: uint32(count), data: &keep[0]}
	}
	err := v.fontOp(&op)
	runtime.KeepAlive(keep)
	if err != nil {
		return fmt.Errorf("loading console font %s on %s: %w", f, v.f.Name(), err)
	}
	return nil
}

// HasFramebuffer reports whether the machine under root has a framebuffer
// (/sys/class/graphics/fb0): only a framebuffer console takes fonts of
// any size.
func HasFramebuffer(root string) bool {
	_, err := os.Stat(filepath.Join(root, "sys/class/graphics/fb0"))
	return err == nil
}

// Result says what Fit did.
type Result struct {
	Pixels     Pixels
	Font       Font // the font chosen; zero if none fits
	Changed    bool // it was loaded (the terminal had another cell size)
	Cols, Rows int  // the text size afterwards
}

// Fit picks the font for the framebuffer behind the virtual terminal on f
// and loads it unless the terminal has that cell size already. On a
// framebuffer too small for 80×24 with any font it changes nothing.
func Fit(f *os.File) (Result, error) {
	vt, err := OpenVT(f)
	if err != nil {
		return Result{}, err
	}
	fonts, err := Fonts()
	if err != nil {
		return Result{}, err
	}
	var r Result
	if r.Pixels, err = vt.Pixels(); err != nil {
		return r, err
	}
	w, h, _ := vt.Cell()
	font, ok := Choose(r.Pixels, fonts)
	if ok && (font.Width != w || font.Height != h) {
		if err := vt.Set(font); err != nil {
			return r, err
		}
		r.Changed = true
	}
	r.Font = font
	r.Cols, r.Rows, err = vt.Text()
	return r, err
}
