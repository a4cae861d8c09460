# CMake toolchain file: cross-build squib for arm64 Linux with Debian's
# gcc-aarch64-linux-gnu against the :arm64 -dev packages (multiarch, under
# /usr/lib/aarch64-linux-gnu).  Used by scripts/build-arm64.sh.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_ASM_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# Multiarch: arm64 libraries and .pc files live beside the host's, headers
# are shared in /usr/include.  Never pick up the host's x86_64 libraries.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")
