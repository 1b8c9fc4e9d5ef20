# build/: arm64 cross-build, arm64 tests under qemu, .deb packages (issue 4).
# Measured on the 2-core machine (cold caches): sysroot 35 s, arm64 build of
# both binaries 4 min, qemu tests 2-9 min, .deb 1 s, install test 2 s.
.PHONY: sysroot arm64 arm64-test deb deb-arm64 deb-install-test
TEST_TARGETS += arm64-test deb-arm64 deb-install-test

sysroot: ## the Debian 12 arm64 sysroot in build/sysroot-arm64 (once; about 1 GB)
	build/sysroot.sh

arm64: sysroot ## cross-compile allscreend and allscreen for arm64 into build/out/arm64
	nice -n 10 build/binaries.sh arm64

arm64-test: arm64 ## the hardware-free packages' tests and an analyze smoke run, under qemu-aarch64
	nice -n 10 build/qemu-test.sh

deb: ## the amd64 .deb in build/out
	build/binaries.sh amd64
	build/deb.sh amd64

deb-arm64: arm64 ## the arm64 .deb (and its size without models) in build/out
	build/deb.sh arm64 --no-models
	build/deb.sh arm64

deb-install-test: deb ## install, start (fake NOTIFY_SOCKET), stop and purge the amd64 .deb (root)
	build/deb-install-test.sh
