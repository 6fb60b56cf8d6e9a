# VaultPAM Connector appliance. `make help` lists the targets.
# The two commands users run (README): `make ova` and `make test`.

SHELL       := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# VERSION: the appliance version, MAJOR.MINOR.PATCH (systemd-boot and the
# updater order versions that way). `make ova VERSION=0.2.0` builds another
# version from the same tree into the same dist/.
VERSION     ?= 0.1.0
# GOTAGS: Go build tags for `make build`. The test-only tag
# vaultpam_fault_neveronline makes a connector that never goes Online (for
# the update rollback tests); release builds leave it empty.
GOTAGS      ?=
# SIGNING_KEY: the release key (a cosign.key path or a KMS reference; its
# password in COSIGN_PASSWORD). Empty: the development key pair in dist/.
SIGNING_KEY ?=
GO          ?= go
BIN         := $(CURDIR)/bin
TOOLS       := $(BIN)/tools
BUILD       := $(CURDIR)/build
DIST        := $(CURDIR)/dist
export SOURCE_DATE_EPOCH ?= 1767225600
export GOFLAGS ?= -buildvcs=false
# The Go release everything is built with, fetched by the go command from the
# module proxy (the machine's own Go may be older: 1.26.8 has net/http,
# crypto/tls and crypto/x509 advisories that 1.26.10 fixes; govulncheck in
# `make lint` checks it).
export GOTOOLCHAIN := go1.26.10

# Go modules (ARCHITECTURE.md, "Modules"): the runtime at the root, the
# build side in modules of its own; go.work ties them for development.
MODULES  := . appliance packer signing tests update deploy
ALLPKGS  := ./... $(patsubst %,./%/...,$(filter-out .,$(MODULES)))
# What `make unit` runs: everything but the cross-cutting tests in tests/.
UNITPKGS := ./... $(patsubst %,./%/...,$(filter-out . tests,$(MODULES)))

# Debian packages the build and the tests use.
DEB_PACKAGES := mmdebstrap squashfs-tools erofs-utils cryptsetup-bin dosfstools mtools \
	systemd-boot-efi ovmf qemu-system-x86 qemu-utils fdisk e2fsprogs binutils zstd genisoimage \
	openssh-server openssh-client dnsmasq-base iproute2 tmux ca-certificates git jq \
	podman runc rpm socat systemd
# Debian packages only the tests use: the approval page's browser test
# (tests/e2e TestPairInBrowser) runs Debian's Chromium headless, with the
# lab's CA in an NSS database made by certutil.
DEB_TEST_PACKAGES := chromium libnss3-tools

# What the tests find through the environment; each test skips with a reason
# when its tool or artifact is missing.
export VAULTPAM_BIN    := $(BIN)
export VAULTPAM_COSIGN := $(TOOLS)/cosign
export VAULTPAM_PACKER := $(TOOLS)/packer
export VAULTPAM_DISK   := $(BUILD)/disk.raw
export VAULTPAM_BUILD  := $(BUILD)
# The shipped OVA: tests/scenario boots the disk taken out of it.
export VAULTPAM_OVA    := $(DIST)/vaultpam-connector-$(VERSION).ova
export VAULTPAM_DIST   := $(DIST)

TESTPKGS ?= $(ALLPKGS)
# Linters, pinned, from the Go module proxy (`make lint`). govulncheck reads
# the Go vulnerability database from the pinned golang.org/x/vulndb module
# (converted by its own gendb into build/vulndb), never from the network.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOVULNCHECK := golang.org/x/vuln/cmd/govulncheck@v1.9.0
VULNDB_MOD  := golang.org/x/vulndb
VULNDB_VER  := v0.0.0-20261105234957-e22db6528018
VULNDB      := $(BUILD)/vulndb-$(VULNDB_VER)
# Advisories accepted in the build-side modules only (they never reach the
# appliance; the runtime module must have none):
#   GO-2026-4529 cosign v2 accepts expired intermediate certificates when the
#                transparency log is skipped; we verify with keys, never
#                certificates, and the fix exists only in cosign v3.
#   GO-2026-5932 golang.org/x/crypto/openpgp is deprecated (linked by cosign,
#                never called for our keys, and by nfpm's PGP package signing in
#                deploy/, which we do not use); the fix is not released yet.
VULN_ACCEPTED_BUILD := GO-2026-4529 GO-2026-5932

COMMANDS := connector/cmd/vaultpam-connector firstboot/cmd/vaultpam-console \
	lab/cmd/vaultpam-lab packer/cmd/packer-plugin-vaultpam appliance/cmd/vaultpam-image \
	signing/cmd/vaultpam-sign update/cmd/vaultpam-update

# The connector's hardened unit, shared by the appliance and the DEB/RPM.
CONNECTOR_UNIT := connector/cmd/vaultpam-connector/vaultpam-connector.service

.PHONY: help check-version deps build tools update-repo image ova bundle packages lint unit test bench e2e fuzz fuzz-smoke clean

help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-9s %s\n", $$1, $$2}'

deps: $(BUILD)/.deps ## install the Debian packages the build and the tests need (as root)
$(BUILD)/.deps: Makefile
	@mkdir -p $(BUILD)
	@if dpkg -s $(DEB_PACKAGES) $(DEB_TEST_PACKAGES) >/dev/null 2>&1; then echo "deps: Debian packages present"; else \
	  echo "deps: installing $(DEB_PACKAGES) $(DEB_TEST_PACKAGES)"; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $(DEB_PACKAGES) $(DEB_TEST_PACKAGES); fi
	@touch $@

# The grammar of update/version; vaultpam-sign update-init checks VERSION
# again in Go before an image is built.
check-version:
	@[[ "$(VERSION)" =~ ^(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})$$ ]] || { \
	  echo "VERSION=$(VERSION): an appliance version is MAJOR.MINOR.PATCH, three decimal numbers without leading zeros (e.g. 0.2.0)"; \
	  echo "hint: no -rc or other suffix: systemd-boot would rank 0.2.0-rc1 above 0.2.0"; exit 2; }

build: check-version ## build the Go binaries into bin/ (VERSION, GOTAGS)
	@mkdir -p $(BIN)
	for c in $(COMMANDS); do \
	  if [ -d $$c ]; then $(GO) build -trimpath -tags "$(GOTAGS)" -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN)/ ./$$c; fi; \
	done
	@# The systemd units that start a program live beside its source; the image takes them from bin/.
	cp connector/cmd/vaultpam-connector/*.service firstboot/cmd/vaultpam-console/*.service \
	  update/cmd/vaultpam-update/*.service $(BIN)/
	cp firstboot/cmd/vaultpam-console/*.socket $(BIN)/

tools: $(TOOLS)/packer $(TOOLS)/cosign ## build pinned Packer and cosign from the Go module proxy into bin/tools/
$(TOOLS)/packer: packer/tools/go.mod packer/tools/go.sum
	@mkdir -p $(TOOLS)
	cd packer/tools && GOWORK=off $(GO) build -trimpath -o $@ github.com/hashicorp/packer
$(TOOLS)/cosign: signing/tools/go.mod
	@mkdir -p $(TOOLS)
	cd signing/tools && GOWORK=off $(GO) build -trimpath -o $@ github.com/sigstore/cosign/v2/cmd/cosign

# The update repository dist/update-repo must exist before an image is built:
# its root is baked in as the updater's trust anchor. An existing one is kept
# (one repository, one root for every version built into dist/).
update-repo: build
	$(BIN)/vaultpam-sign update-init --dist $(DIST) --version $(VERSION) $(if $(SIGNING_KEY),--key $(SIGNING_KEY))

image: deps build update-repo ## build the raw disk image build/disk.raw (package stage cached)
	$(BIN)/vaultpam-image build --bin $(BIN) --out $(BUILD) --version $(VERSION) --update-root $(DIST)/update-repo/root.json

PACKER_BUILD = mkdir -p $(BUILD)/packer-plugins; \
	export CHECKPOINT_DISABLE=1 PACKER_PLUGIN_PATH=$(BUILD)/packer-plugins; \
	$(TOOLS)/packer plugins install --path $(BIN)/packer-plugin-vaultpam github.com/vaultpam/vaultpam && \
	$(TOOLS)/packer build -force -color=false \
	  -var version=$(VERSION) -var bin_dir=$(BIN) -var build_dir=$(BUILD) -var dist_dir=$(DIST) \
	  $(if $(SIGNING_KEY),-var signing_key=$(SIGNING_KEY))

ova: deps build tools update-repo ## build the signed OVA, update bundle and update ISO of VERSION into dist/ with Packer
	$(PACKER_BUILD) packer/

bundle: deps build tools update-repo ## like ova without the OVA: the update bundle and ISO of VERSION, signed, into dist/
	$(PACKER_BUILD) -except=ova packer/

packages: deps ## build the DEB, the RPM and the container image (OCI tarball) into dist/, signed
	@mkdir -p $(BUILD)/packages
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" \
	  -o $(BUILD)/packages/vaultpam-connector ./connector/cmd/vaultpam-connector
	$(GO) run ./deploy/cmd/vaultpam-packages build --connector $(BUILD)/packages/vaultpam-connector \
	  --unit $(CONNECTOR_UNIT) --version $(VERSION) --dist $(DIST)

lint: deps $(VULNDB)/index/db.json ## gofmt, go vet, staticcheck, go mod tidy -diff and govulncheck over every module (all pinned)
	@echo "lint: gofmt"; out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@echo "lint: go mod tidy -diff"; for m in $(MODULES); do (cd $$m && $(GO) mod tidy -diff) || { echo "module $$m: run go mod tidy"; exit 1; }; done
	@echo "lint: go vet"; $(GO) vet $(ALLPKGS)
	@echo "lint: staticcheck"; $(GO) run $(STATICCHECK) $(ALLPKGS)
	@echo "lint: govulncheck (runtime module: no advisory accepted)"; $(GO) run $(GOVULNCHECK) -db file://$(VULNDB) ./...
	@echo "lint: govulncheck (build modules: accepted $(VULN_ACCEPTED_BUILD))"; \
	  found=$$($(GO) run $(GOVULNCHECK) -db file://$(VULNDB) -format json $(filter-out ./...,$(ALLPKGS)) | \
	    jq -r 'select(.finding != null and .finding.trace[0].function != null) | .finding.osv' | sort -u); \
	  bad=$$(comm -23 <(echo "$$found" | sed '/^$$/d') <(tr ' ' '\n' <<< "$(VULN_ACCEPTED_BUILD)" | sort -u)); \
	  if [ -n "$$bad" ]; then echo "govulncheck: the build modules call code with these advisories:"; echo "$$bad"; \
	    echo "hint: go run $(GOVULNCHECK) -db file://$(VULNDB) ./MODULE/... shows where; upgrade the module"; exit 1; fi

# The vulnerability database, from the pinned x/vulndb module (its gendb
# wants a git repository, so the module's data directory becomes one).
$(VULNDB)/index/db.json:
	@echo "lint: building the Go vulnerability database from $(VULNDB_MOD)@$(VULNDB_VER)"
	@rm -rf $(VULNDB) $(VULNDB).repo && mkdir -p $(VULNDB).repo
	@dir=$$(GOWORK=off GOFLAGS= $(GO) mod download -json $(VULNDB_MOD)@$(VULNDB_VER) | jq -r .Dir) && \
	  cp -r "$$dir/data" $(VULNDB).repo/ && chmod -R u+w $(VULNDB).repo
	@cd $(VULNDB).repo && git init -q && git add -A && \
	  git -c user.name=vaultpam -c user.email=build@localhost commit -qm "x/vulndb $(VULNDB_VER)"
	@GOWORK=off GOFLAGS= $(GO) run $(VULNDB_MOD)/cmd/gendb@$(VULNDB_VER) -repo $(VULNDB).repo -out $(VULNDB) 2>&1 | grep -v '^go: downloading' || true
	@rm -rf $(VULNDB).repo
	@test -s $@

unit: ## unit tests of every module but tests/, in -short mode: no root, no image, no VM (about a minute)
	VAULTPAM_DISK= VAULTPAM_COSIGN= VAULTPAM_PACKER= VAULTPAM_BIN= VAULTPAM_DIST= $(GO) test -short -count=1 $(UNITPKGS)

# make test builds the image once: `make ova` (Packer's builder writes
# build/disk.raw, the post-processors the OVA from it); the image tests use
# that raw disk, tests/scenario the disk inside the OVA.
test: deps build tools ova lint fuzz-smoke ## run every test (unit, integration, image, boot, the e2e scenario) after lint and 3 s of each fuzz target; installs what it needs
	@echo "go test ./... (full log in build/test.log)"
	@rm -f $(BUILD)/*-timings.txt; mkdir -p $(BUILD)/test-artifacts
	@rc=0; $(GO) test -v -p 2 -timeout 90m -artifacts -outputdir $(BUILD)/test-artifacts $(TESTPKGS) > $(BUILD)/test.log 2>&1 || rc=$$?; \
	  grep -E '^(ok|FAIL|panic:|\?) ' $(BUILD)/test.log || true; \
	  echo "skipped, with reasons:"; awk '/^ *=== (RUN|CONT|PAUSE|NAME)/ { reason = ""; next } /^ *--- SKIP/ { print "  " $$3 ": " (reason != "" ? reason : "(no reason printed)"); reason = ""; next } { r = $$0; sub(/^ +/, "", r); reason = r }' $(BUILD)/test.log; \
	  if [ $$rc -ne 0 ]; then echo "failures:"; grep -vE '^(=== (RUN|PAUSE|CONT|NAME)| *--- (PASS|SKIP))' $(BUILD)/test.log | grep -B2 -A40 -E -- '--- FAIL|^panic:|^FAIL' | head -400 || true; fi; \
	  cat $(BUILD)/*-timings.txt 2>/dev/null || true; \
	  echo "tests: $$(grep -cE '^ *--- PASS' $(BUILD)/test.log) passed, $$(grep -cE '^ *--- FAIL' $(BUILD)/test.log) failed, $$(grep -cE '^ *--- SKIP' $(BUILD)/test.log) skipped"; \
	  exit $$rc

bench: deps build ## run the benchmarks (tunnel vs TCP vs ssh -R, VMDK writing, signing); tunnel figures in build/bench.json
	$(GO) test -run '^$$' -bench . -benchmem -timeout 30m ./tests/bench/... ./appliance/vmdk/ ./signing/

e2e: deps build tools ova ## the end-to-end scenario on the shipped OVA's disk in QEMU (vSphere-like, TCG), timed per step; screenshots in build/test-artifacts
	@rm -f $(BUILD)/*-timings.txt; mkdir -p $(BUILD)/test-artifacts
	$(GO) test -v -p 1 -count=1 -timeout 90m -artifacts -outputdir $(BUILD)/test-artifacts ./tests/scenario/
	@cat $(BUILD)/*-timings.txt

# Every Go fuzz target (func FuzzX in a _test.go file) runs for FUZZTIME
# from its committed seed corpus (testdata/fuzz/FuzzX); a failure leaves
# the input under that directory for `go test -run FuzzX/NAME`.
FUZZTIME ?= 60s
fuzz: deps ## run every fuzz target for FUZZTIME each (default 60s); make test runs them for 3s
	@set -e; git grep -l '^func Fuzz' -- '*_test.go' | sort | while read -r f; do \
	  d=$$(dirname $$f); for fn in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
	    echo "fuzz: $$d $$fn ($(FUZZTIME))"; \
	    (cd $$d && $(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) . > $(BUILD)/fuzz.log 2>&1) || \
	      { cat $(BUILD)/fuzz.log; echo "fuzz: $$fn in $$d failed; the input is in $$d/testdata/fuzz/$$fn"; exit 1; }; \
	  done; done

fuzz-smoke:
	@$(MAKE) --no-print-directory fuzz FUZZTIME=3s

clean: ## remove build outputs (keeps the package cache in build/cache)
	rm -rf $(BIN) $(DIST) $(BUILD)/disk.raw $(BUILD)/packer-plugins
