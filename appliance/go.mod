module github.com/vaultpam/appliance/appliance

go 1.26.0

require (
	github.com/google/go-cmp v0.7.0
	github.com/klauspost/compress v1.20.2
	github.com/vaultpam/appliance v0.0.0-00010101000000-000000000000
	github.com/vaultpam/appliance/update v0.0.0-00010101000000-000000000000
	github.com/vmware/govmomi v0.52.0
)

require (
	github.com/davecgh/go-spew v1.1.2-0.20180830191138-d8f796af33cc // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/pmezard/go-difflib v1.0.1-0.20181226105442-5d4384ee4fb2 // indirect
	github.com/stretchr/testify v1.11.1 // indirect
	golang.org/x/text v0.42.0 // indirect
)

replace (
	github.com/vaultpam/appliance => ../
	github.com/vaultpam/appliance/update => ../update
)
