module github.com/vaultpam/appliance/tests

go 1.26.0

require (
	github.com/vaultpam/appliance v0.0.0-00010101000000-000000000000
	github.com/vaultpam/appliance/appliance v0.0.0-00010101000000-000000000000
	github.com/vishvananda/netns v0.0.5
)

require (
	github.com/hashicorp/yamux v0.1.2 // indirect
	github.com/klauspost/compress v1.20.2 // indirect
	github.com/vaultpam/appliance/update v0.0.0-00010101000000-000000000000 // indirect
	golang.org/x/sys v0.48.0 // indirect
)

replace (
	github.com/vaultpam/appliance => ../
	github.com/vaultpam/appliance/appliance => ../appliance
	github.com/vaultpam/appliance/update => ../update
)
