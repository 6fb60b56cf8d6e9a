// Module fontgen makes the console's 12×24 font from Go Mono Bold. It is a
// module of its own so the runtime module (what the appliance runs) does
// not require the font rasteriser; see main.go.
module github.com/vaultpam/appliance/firstboot/fontgen

go 1.26.0

require golang.org/x/image v0.48.0

require (
	golang.org/x/sys v0.50.0 // indirect
	golang.org/x/text v0.44.0 // indirect
)
