// Port of nvmatrix_kernels.cu / nvmatrix_operators.cuh: the NVMatrix elementwise,
// aggregation, tiling and random-number kernels (CPU side: src/nvmatrix/; host side:
// src/cuda/launch/nvmatrix.rs, whose `Unary`, `Binary`, `Randomizer` and aggregation
// codes number the cases below).
#include "common.cuh"

// ---- Elementwise functors (NVMatrixOps, NVMatrixBinaryOps; src/nvmatrix/ops.rs) ----

// Unary functor `op` with scalar parameters p, q.
__device__ __forceinline__ float nvm_unary_op(int op, float a, float p, float q) {
    switch (op) {
    case 0: return cc_expf(a);                             // Exp
    case 1: return cc_fdividef(1.0f, 1.0f + cc_expf(-a));  // Logistic
    case 2: return cc_logf(a);                             // Log
    case 3: return a * a;                                  // Square
    case 4: return sqrtf(a);                               // Sqrt
    case 5: return 1.0f / a;                               // Reciprocal
    case 6: return a > 0.0f ? a : -a;                      // Abs
    case 7: return (float)((a > 0.0f) - (a < 0.0f));       // Sign
    case 8: return a;                                      // Identity
    case 9: return 0.0f;                                   // Zero
    case 10: return 1.0f;                                  // One
    case 11: return a < p ? 1.0f : 0.0f;                   // SmallerThanScalar(p)
    case 12: return a > p ? 1.0f : 0.0f;                   // BiggerThanScalar(p)
    case 13: return a + p;                                 // AddScalar(p)
    case 14: return fmaf(p, a, q);                         // WeightedAddScalar(p, q)
    case 15: return a * p;                                 // MultByScalar(p)
    case 16: return cc_powf(a, p);                         // Pow(p)
    case 17: return a > p && a < q ? 1.0f : 0.0f;          // InRange<true>(p, q)
    case 18: return a >= p && a <= q ? 1.0f : 0.0f;        // InRange<false>(p, q)
    case 19: return a > p ? p : a;                         // MinWithScalar(p)
    default: return a > p ? a : p;                         // MaxWithScalar(p)
    }
}

// Binary functor `op` with scalar parameters p, q.
__device__ __forceinline__ float nvm_binary_op(int op, float a, float b, float p, float q) {
    switch (op) {
    case 0: return a == b ? 1.0f : 0.0f;                   // Equals
    case 1: return a > b ? 1.0f : 0.0f;                    // BiggerThan
    case 2: return cc_fdividef(a, b);                      // Divide
    case 3: return a * b;                                  // Multiply
    case 4: { float d = a - b; return d * d; }             // SquaredDiff
    case 5: return fmaf(p, a, q * b);                      // WeightedAdd(p, q)
    case 6: return a + b;                                  // Add
    case 7: return a;                                      // First
    case 8: return b;                                      // Second
    default: return p * b;                                 // SecondScaled(p)
    }
}

// ---- The elementwise loop (kEltwise*Op*, kRowVectorOp, kColVectorOp, copies) ----
// Output i is target element (f, l) = (i / leading, i % leading) of the target's
// memory order, at dst[f*dstStride + l]; operand k's element at the same logical
// position is src_k[f*across_k + l*along_k] (strides 0 broadcast a vector). An operand
// may be the target itself with the target's strides.

#define NVM_AT(p, across, along) (p)[(long long)f * (across) + (long long)l * (along)]
#define NVM_ELTWISE_LOOP(expr)                                                          \
    CC_FOR_EACH(i, following * leading) {                                               \
        int f = i / leading, l = i % leading;                                           \
        dst[(long long)f * dstStride + l] = (expr);                                     \
    }

extern "C" __global__ void nvm_eltwise_unary(float* dst, int following, int leading, int dstStride, const float* a, int aAcross, int aAlong, int op, float p, float q) {
    NVM_ELTWISE_LOOP(nvm_unary_op(op, NVM_AT(a, aAcross, aAlong), p, q))
}

extern "C" __global__ void nvm_eltwise_binary(float* dst, int following, int leading, int dstStride, const float* a, int aAcross, int aAlong, const float* b, int bAcross, int bAlong, int op, float p, float q) {
    NVM_ELTWISE_LOOP(nvm_binary_op(op, NVM_AT(a, aAcross, aAlong), NVM_AT(b, bAcross, bAlong), p, q))
}

// NVMatrixTernaryOps::Add: (a + b) + c.
extern "C" __global__ void nvm_eltwise_ternary_add(float* dst, int following, int leading, int dstStride, const float* a, int aAcross, int aAlong, const float* b, int bAcross, int bAlong, const float* c, int cAcross, int cAlong) {
    NVM_ELTWISE_LOOP((NVM_AT(a, aAcross, aAlong) + NVM_AT(b, bAcross, bAlong)) + NVM_AT(c, cAcross, cAlong))
}

// kTile: target element i of the target's memory order (lines dstLeading long) copies
// (y mod srcFollowing, x mod srcLeading) of the source's.
extern "C" __global__ void nvm_tile(float* dst, const float* src, int srcLeading, int srcFollowing, int dstLeading, int n) {
    CC_FOR_EACH(i, n) {
        int y = i / dstLeading, x = i % dstLeading;
        dst[i] = src[(y % srcFollowing) * srcLeading + x % srcLeading];
    }
}

// ---- Aggregations (src/nvmatrix/aggregate.rs) ----

// NVMatrixAggs: 0 Sum, 1 Max, 2 Min.
__device__ __forceinline__ float nvm_agg(int agg, float a, float b) {
    return agg == 0 ? a + b : agg == 1 ? (a > b ? a : b) : (a > b ? b : a);
}
__device__ __forceinline__ float nvm_agg_base(int agg) {
    return agg == 0 ? 0.0f : agg == 1 ? -2e38f : 2e38f;
}

// `op(target, acc)` of _aggregate: 0 Second, 1 SecondScaled(scaleSum), 2
// WeightedAdd(scaleThis, scaleSum) with the product nvcc fused in the kernel at hand.
__device__ __forceinline__ float nvm_finish(int finish, float* target, float acc, float scaleThis, float scaleSum, int fuseFirst) {
    if (finish == 0) return acc;
    if (finish == 1) return scaleSum * acc;
    float t = *target;
    return fuseFirst ? fmaf(scaleThis, t, scaleSum * acc) : fmaf(scaleSum, acc, scaleThis * t);
}

// The reduction trees of the original's blocks, performed by one thread. Leaves are fed
// in order k = 0, 1, ...; after leaf k the top two partial results are combined
// (agg(earlier, later)) as long as they cover equal numbers of leaves, so 2^m leaves
// leave one value: the pairwise tree over the leaves in feed order. In natural order
// this is the lock-step `v[i] = agg(v[i], v[i+d])`, d = 1, 2, 4, ...; in bit-reversed
// order it is the halving `v[t] = agg(v[t], v[t+d])`, d = N/2, ..., 1.
#define NVM_TREE_DEPTH 12
__device__ __forceinline__ void nvm_tree_push(float* st, int* sp, int k, float x, int agg) {
    st[(*sp)++] = x;
    for (unsigned int m = (unsigned int)k + 1; (m & 1u) == 0; m >>= 1) {
        --*sp;
        st[*sp - 1] = nvm_agg(agg, st[*sp - 1], st[*sp]);
    }
}
__device__ __forceinline__ int nvm_bitrev(int k, int bits) {
    int r = 0;
    for (int b = 0; b < bits; ++b) r = (r << 1) | ((k >> b) & 1);
    return r;
}
__device__ __forceinline__ int nvm_log2(int n) {
    int b = 0;
    while ((1 << b) < n) ++b;
    return b;
}

// kDumbAggCols: one output per memory column, folded serially over the lines.
extern "C" __global__ void nvm_agg_cols(float* target, const float* src, int width, int height, int agg, int finish, float scaleThis, float scaleSum) {
    CC_FOR_EACH(c, width) {
        float acc = src[c];
        for (int line = 1; line < height; ++line) acc = nvm_agg(agg, src[(long long)line * width + c], acc);
        target[c] = nvm_finish(finish, &target[c], acc, scaleThis, scaleSum, 0);
    }
}

// Row aggregation, one output per memory line, by the original's kernel `kind`:
// 0 kAggShortRows / kAggShortRows2 (threadsX lanes each folding loopsX strided values,
// then folded in lane order), 1 kAggRows_wholerow_nosync (256 strided folds, pairwise
// in natural order), 2 kAggRows (threadsX = 2*blockSize leaves padded with the base
// value, halving tree).
extern "C" __global__ void nvm_agg_rows(float* target, const float* src, int width, int height, int kind, int loopsX, int threadsX, int agg, int finish, float scaleThis, float scaleSum) {
    CC_FOR_EACH(r, height) {
        const float* row = src + (long long)r * width;
        float base = nvm_agg_base(agg);
        float acc = base;
        if (kind == 0) {
            for (int l = 0; l < threadsX; ++l) {
                float s = base;
                for (int x = 0; x < loopsX * threadsX; x += threadsX)
                    if (x + l < width) s = nvm_agg(agg, row[x + l], s);
                acc = nvm_agg(agg, acc, s);
            }
        } else {
            float st[NVM_TREE_DEPTH];
            int sp = 0;
            int leaves = kind == 1 ? 256 : threadsX, bits = nvm_log2(leaves);
            for (int k = 0; k < leaves; ++k) {
                float v = base;
                if (kind == 1) {
                    for (int x = k; x < width; x += 256) v = nvm_agg(agg, v, row[x]);
                } else {
                    int i = nvm_bitrev(k, bits);
                    if (i < width) v = row[i];
                }
                nvm_tree_push(st, &sp, k, v, agg);
            }
            acc = st[0];
        }
        target[r] = nvm_finish(finish, &target[r], acc, scaleThis, scaleSum, kind != 0);
    }
}

// One pass of kTotalAgg (dot == 0: agg(s, a[e])) or kDotProduct_r (dot != 0: fmaf(a[e],
// b[e], s), Sum): output block k folds its 512 threads' strided sums (thread t from
// element 512k + t by numCols, if below numCols) with the halving tree.
extern "C" __global__ void nvm_total_agg(float* out, const float* a, const float* b, int n, int numCols, int agg, int dot) {
    CC_FOR_EACH(blk, (numCols + 511) / 512) {
        float st[NVM_TREE_DEPTH];
        int sp = 0;
        for (int k = 0; k < 512; ++k) {
            float s = nvm_agg_base(agg);
            int e = 512 * blk + nvm_bitrev(k, 9);
            if (e < numCols)
                for (; e < n; e += numCols) s = dot ? fmaf(a[e], b[e], s) : nvm_agg(agg, s, a[e]);
            nvm_tree_push(st, &sp, k, s, agg);
        }
        out[blk] = st[0];
    }
}

// ---- cuRAND XORWOW (src/nvmatrix/curand.rs) ----
// A state is 8 words: d, v[0..5], boxmuller_flag, boxmuller_extra (float bits).

struct nvm_rng {
    unsigned int d, v[5], flag;
    float extra;
};

__device__ __forceinline__ unsigned int nvm_curand(nvm_rng* s) {
    unsigned int t = s->v[0] ^ (s->v[0] >> 2);
    s->v[0] = s->v[1];
    s->v[1] = s->v[2];
    s->v[2] = s->v[3];
    s->v[3] = s->v[4];
    s->v[4] = (s->v[4] ^ (s->v[4] << 4)) ^ (t ^ (t << 1));
    s->d += 362437u;
    return s->v[4] + s->d;
}

// _curand_uniform: fmaf(float(x), 2^-32, 2^-33).
__device__ __forceinline__ float nvm_uniform(unsigned int x) {
    return fmaf((float)x, cc_uint_as_float(0x2F800000u), cc_uint_as_float(0x2F000000u));
}

// CUDA's logf (not __logf), the instruction sequence of curand.rs::logf.
__device__ float nvm_logf_full(float a) {
    float x = a, e0 = 0.0f;
    if (a < cc_uint_as_float(0x00800000u)) {
        x = a * 8388608.0f;
        e0 = -23.0f;
    }
    if (x == 0.0f) return cc_uint_as_float(0xFF800000u);
    unsigned int ix = cc_float_as_uint(x);
    unsigned int e = (ix - 0x3F2AAAABu) & 0xFF800000u;
    float m = cc_uint_as_float(ix - e);
    float fe = fmaf((float)(int)e, cc_uint_as_float(0x34000000u), e0);
    float f = m + -1.0f;
    float p = fmaf(cc_uint_as_float(0xBE055027u), f, cc_uint_as_float(0x3E1039F6u));
    const unsigned int k[7] = {0xBDF8CDCCu, 0x3E0F2955u, 0xBE2AD8B9u, 0x3E4CED0Bu,
                               0xBE7FFF22u, 0x3EAAAA78u, 0xBF000000u};
    for (int j = 0; j < 7; ++j) p = fmaf(p, f, cc_uint_as_float(k[j]));
    float r = fmaf(f * p, f, f);
    float inf = cc_uint_as_float(0x7F800000u);
    return ix < 0x7F800000u ? fmaf(fe, cc_uint_as_float(0x3F317218u), r) : fmaf(x, inf, inf);
}

// curand_normal: Box-Muller pairs, the second value cached in the state.
__device__ float nvm_normal(nvm_rng* s) {
    if (s->flag) {
        s->flag = 0;
        return s->extra;
    }
    unsigned int x = nvm_curand(s), y = nvm_curand(s);
    float u = nvm_uniform(x);
    float v = fmaf((float)y, cc_uint_as_float(0x30C90FDBu), cc_uint_as_float(0x30490FDBu));
    float l = -2.0f * nvm_logf_full(u);
    float r = sqrtf(u == 0.0f ? cc_uint_as_float(0x7F800000u) : l);
    float sn, cs;
    cc_sincosf(v, &sn, &cs);
    s->extra = r * cs;
    s->flag = 1;
    return r * sn;
}

// kSetupCurand: state t = curand_init(seed, t, 0), i.e. the host's curand_init(seed,
// 0, 0) (`first`, 8 words) jumped t subsequences with the uploaded matrices
// M^(2^(67+j)) (jumps[800*j + 5*column + word], column = 32*word_in + bit).
extern "C" __global__ void nvm_curand_setup(unsigned int* states, const unsigned int* first, const unsigned int* jumps, int numJumps, int numStreams) {
    CC_FOR_EACH(t, numStreams) {
        unsigned int v[5];
        for (int w = 0; w < 5; ++w) v[w] = first[1 + w];
        for (int j = 0; j < numJumps; ++j) {
            if (((t >> j) & 1) == 0) continue;
            unsigned int r[5] = {0u, 0u, 0u, 0u, 0u};
            for (int c = 0; c < 160; ++c)
                if ((v[c / 32] >> (c % 32)) & 1u)
                    for (int w = 0; w < 5; ++w) r[w] ^= jumps[800 * j + 5 * c + w];
            for (int w = 0; w < 5; ++w) v[w] = r[w];
        }
        unsigned int* s = states + 8 * (long long)t;
        s[0] = first[0];
        for (int w = 0; w < 5; ++w) s[1 + w] = v[w];
        s[6] = 0u;
        s[7] = 0u;
    }
}

// kUnaryRandomize / kBinaryRandomize: stream t visits elements t, t + numStreams, ...
// with its state, dst[i] = randomizer `kind` (a, b: the operands, read only by the
// kinds that use them): 0 uniform, 1 fmaf(normal, q, p) (Gaussian, mean p, stdev q),
// 2 b * normal, 3 fmaf(p, normal, a), 4 fmaf(b, normal, a), 5 fmaf(b*b, normal, a),
// 6 a > uniform (binarize).
extern "C" __global__ void nvm_randomize(float* dst, const float* a, const float* b, unsigned int* states, int numStreams, int n, int kind, float p, float q) {
    CC_FOR_EACH(t, numStreams) {
        unsigned int* w = states + 8 * (long long)t;
        nvm_rng s;
        s.d = w[0];
        for (int k = 0; k < 5; ++k) s.v[k] = w[1 + k];
        s.flag = w[6];
        s.extra = cc_uint_as_float(w[7]);
        for (int i = t; i < n; i += numStreams) {
            float r;
            switch (kind) {
            case 0: r = nvm_uniform(nvm_curand(&s)); break;
            case 1: r = fmaf(nvm_normal(&s), q, p); break;
            case 2: r = b[i] * nvm_normal(&s); break;
            case 3: r = fmaf(p, nvm_normal(&s), a[i]); break;
            case 4: r = fmaf(b[i], nvm_normal(&s), a[i]); break;
            case 5: r = fmaf(b[i] * b[i], nvm_normal(&s), a[i]); break;
            default: r = a[i] > nvm_uniform(nvm_curand(&s)) ? 1.0f : 0.0f; break;
            }
            dst[i] = r;
        }
        w[0] = s.d;
        for (int k = 0; k < 5; ++k) w[1 + k] = s.v[k];
        w[6] = s.flag;
        w[7] = cc_float_as_uint(s.extra);
    }
}
