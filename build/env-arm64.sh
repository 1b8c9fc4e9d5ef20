# Sourced by the arm64 build scripts: the cross-compiling environment for
# gocv against the Debian 12 arm64 sysroot (build/sysroot.sh makes it).
SYSROOT=${SYSROOT:-$(pwd)/build/sysroot-arm64}
export CGO_ENABLED=1 GOOS=linux GOARCH=arm64
export CC="aarch64-linux-gnu-gcc --sysroot=$SYSROOT"
export CXX="aarch64-linux-gnu-g++ --sysroot=$SYSROOT"
export PKG_CONFIG_SYSROOT_DIR=$SYSROOT
export PKG_CONFIG_LIBDIR=$SYSROOT/usr/lib/aarch64-linux-gnu/pkgconfig:$SYSROOT/usr/share/pkgconfig
