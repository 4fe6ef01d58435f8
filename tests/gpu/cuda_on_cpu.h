// Run a CUDA kernel's source on the CPU, for tests on machines without a GPU.
//
// Each block runs on its own: one OS thread per CUDA thread, started together and joined before the next
// block, so a function-level `static` array is the block's shared memory (`__shared__` means `static`).
// __syncthreads() is a barrier over the block; __shfl_xor_sync() exchanges through a slot per thread with a
// barrier over the warp before and after. Only what tinytensor's kernels use is here.
#pragma once
#include <barrier>
#include <cmath>
#include <math.h>               // expf, logf, fmaxf, tanhf as CUDA names them
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static

inline std::unique_ptr<std::barrier<>> tt_block_barrier;
inline std::vector<std::unique_ptr<std::barrier<>>> tt_warp_barriers;
inline std::vector<float> tt_slots;

inline void __syncthreads() { tt_block_barrier->arrive_and_wait(); }

inline float __shfl_xor_sync(unsigned, float v, int lane_mask) {
    const unsigned t = threadIdx.x, warp = t / 32, lane = t % 32;
    tt_slots[t] = v;
    tt_warp_barriers[warp]->arrive_and_wait();
    const float r = tt_slots[warp * 32 + (lane ^ lane_mask)];
    tt_warp_barriers[warp]->arrive_and_wait();
    return r;
}

inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline float __int_as_float(int u) { float f; std::memcpy(&f, &u, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }

// launch(grid, block, [&] { kernel(args...); }): every block in turn, all its threads at once
template <class Body>
void tt_launch(dim3 grid, dim3 block, Body body) {
    gridDim = grid;
    blockDim = block;
    const unsigned n = block.x;                       // 1-D blocks of whole warps
    tt_slots.assign(n, 0.0f);
    for (unsigned by = 0; by < grid.y; ++by) {
        for (unsigned bx = 0; bx < grid.x; ++bx) {
            tt_block_barrier = std::make_unique<std::barrier<>>(n);
            tt_warp_barriers.clear();
            for (unsigned w = 0; w < n / 32; ++w) tt_warp_barriers.push_back(std::make_unique<std::barrier<>>(32));
            std::vector<std::thread> threads;
            for (unsigned t = 0; t < n; ++t) {
                threads.emplace_back([=] {
                    threadIdx = dim3{t, 0, 0};
                    blockIdx = dim3{bx, by, 0};
                    body();
                });
            }
            for (auto& th : threads) th.join();
        }
    }
}
