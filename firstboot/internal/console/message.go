package console

import "github.com/vaultpam/appliance/firstboot/internal/screen"

// messageView shows a few lines and goes on with Enter (when next is set).
type messageView struct {
	title string
	lines []string
	next  func(a *App)
}

func (v *messageView) draw(a *App) page {
	var body []screen.Line
	for _, l := range v.lines {
		body = append(body, a.wrap(2, l)...)
	}
	help := ""
	if v.next != nil {
		help = "Enter continue"
	}
	return page{title: v.title, body: body, help: help}
}

func (v *messageView) key(a *App, k screen.Key) {
	if v.next != nil && k.Kind == screen.KeyEnter {
		v.next(a)
	}
}
