# Sourced by scripts/build-cuda.sh and scripts/test.sh: how nvcc builds the CUDA kernels of
# the `cuda` variant. The GPU architecture to compile kernels for: 90 is Hopper (H100/H200),
# 80 A100, 86/89 Ampere/Ada workstation cards. Each one adds minutes of nvcc time.
export NVCC_CCBIN=g++-11
cuda_arch=${CUDA_ARCH:-90}
export EC_GPU_CUDA_NVCC_ARGS="--fatbin --gpu-architecture=sm_${cuda_arch} --generate-code=arch=compute_${cuda_arch},code=sm_${cuda_arch} -ccbin g++-11"
