# Shell functions shared by scripts/gpu-bundle.sh (which builds the GPU bundle here) and
# scripts/gpu-check.sh (which checks and runs it on the GPU machine). Sourced, not run.

# is_elf FILE: true for an ELF file
is_elf() { [ "$(head -c 4 "$1" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ]; }

# The libraries the bundle leaves to the GPU machine, as extended regular expressions over a
# SONAME: the C library and the compiler's runtime (the machine's own, newer ones), the driver
# (libcuda, only ever the machine's) and NVIDIA's big libraries (cuDNN, cuBLAS, cuRAND, NCCL,
# NVRTC: PyTorch's wheels or the image's toolkit have them). libcudart is carried: it is small
# and must match the nvcc that compiled the kernels.
EBMC_LEFT_TO_MACHINE='^(linux-vdso|ld-linux-x86-64|libc|libm|libdl|libpthread|librt|libresolv|libutil|libstdc\+\+|libgcc_s|libcuda|libcudnn[a-z_]*|libcublas|libcublasLt|libcurand|libnccl|libnvrtc[a-z-]*|libnvJitLink)\.so'
left_to_machine() { [[ "$1" =~ $EBMC_LEFT_TO_MACHINE ]]; }
left_to_machine_list() { echo "glibc (libc, libm, libdl, libpthread, librt), libstdc++, libgcc_s, libcuda, cuDNN, cuBLAS(Lt), cuRAND, NCCL, NVRTC"; }

# source_hash: one SHA-256 over the files the binaries are built from (C, CUDA, headers, CMake),
# path and content, in a fixed order: the bundle records it, the GPU machine recomputes it over
# the working tree that travelled, so a stale bundle is caught before anything runs
source_hash() {
  find src include tests bench CMakeLists.txt -type f \
       \( -name '*.c' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' -o -name '*.inc' \
          -o -name 'CMakeLists.txt' -o -name '*.cmake' \) -print0 2>/dev/null |
    LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
}
