//! The numeric kernels the trainers run on, behind one small trait.
//!
//! Trainers express their heavy work (forward and backward passes, Gram
//! matrices, Hessians) as matrix products through [`Kernels`]; everything
//! else is cheap elementwise code. An accelerator backend would implement
//! this trait behind a cargo feature and be chosen in [`backend`]; the
//! trainers would not change.
//!
//! The CPU kernel is plain Rust with a fixed summation order and no fused
//! multiply-add, so that a product is bit-for-bit the same on every machine
//! (and trained models with it). It packs panels of both operands and runs a
//! register-blocked micro-kernel, which the compiler vectorises: 4×4 tiles
//! for baseline x86-64 (SSE2) and other targets, 8×4 tiles compiled for
//! AVX2 where the CPU has it (still without FMA, so with the same bits).

/// A read-only view of a matrix with arbitrary strides, so that a transpose
/// is free ([`MatRef::t`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct MatRef<'a> {
    data: &'a [f64],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major `rows × cols` view of `data`.
    pub(crate) fn new(data: &'a [f64], rows: usize, cols: usize) -> Self {
        assert_eq!(data.len(), rows * cols, "matrix view of the wrong size");
        MatRef {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transposed view.
    pub(crate) fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// Row `i` as a slice, when its elements are contiguous.
    #[inline]
    fn row(&self, i: usize) -> Option<&'a [f64]> {
        (self.col_stride == 1).then(|| &self.data[i * self.row_stride..][..self.cols])
    }

    #[inline]
    fn at(&self, i: usize, j: usize) -> f64 {
        self.data[i * self.row_stride + j * self.col_stride]
    }
}

/// Matrix products, the kernels of training.
pub(crate) trait Kernels: Send + Sync {
    /// `c = a·b`, or `c += a·b` when `accumulate`; `c` is row-major
    /// `a.rows × b.cols`.
    fn matmul(&self, a: MatRef<'_>, b: MatRef<'_>, c: &mut [f64], accumulate: bool);

    /// `c = a·b` for a product known to be symmetric, such as a Gram matrix
    /// `Xᵀ·(D·X)`: only the upper triangle is computed and then mirrored,
    /// which halves the work and makes `c` exactly symmetric.
    fn symmetric_matmul(&self, a: MatRef<'_>, b: MatRef<'_>, c: &mut [f64]);
}

/// The kernels in use: the portable CPU ones. (An accelerator feature would
/// choose here.)
pub(crate) fn backend() -> &'static dyn Kernels {
    &Cpu
}

/// The portable, deterministic CPU kernels.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Cpu;

const NR: usize = 4;
/// Depth of one packed block: panels stay in L1/L2 and packing memory is
/// bounded however many samples there are.
const KC: usize = 256;

impl Kernels for Cpu {
    fn matmul(&self, a: MatRef<'_>, b: MatRef<'_>, c: &mut [f64], accumulate: bool) {
        gemm(a, b, c, accumulate, false);
    }

    fn symmetric_matmul(&self, a: MatRef<'_>, b: MatRef<'_>, c: &mut [f64]) {
        let n = a.rows;
        assert_eq!(b.cols, n, "a symmetric product is square");
        gemm(a, b, c, false, true);
        for i in 0..n {
            for j in 0..i {
                c[i * n + j] = c[j * n + i];
            }
        }
    }
}

/// The packed product; with `upper`, tiles wholly below the diagonal are
/// skipped.
fn gemm(a: MatRef<'_>, b: MatRef<'_>, c: &mut [f64], accumulate: bool, upper: bool) {
    if a.rows == 1 || b.cols == 1 {
        gemm_thin(a, b, c, accumulate);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, the one requirement of `gemm_avx2`.
        unsafe { gemm_avx2(a, b, c, accumulate, upper) };
        return;
    }
    gemm_tiled::<4>(a, b, c, accumulate, upper);
}

/// A product with one row or one column (a matrix-vector product), where
/// padding tiles would waste most of the work. Same order of summation as
/// [`gemm_tiled`]: in order of the inner index within blocks of `KC`, each
/// block's sum added to the output.
fn gemm_thin(a: MatRef<'_>, b: MatRef<'_>, c: &mut [f64], accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "inner dimensions differ");
    assert_eq!(c.len(), m * n, "output of the wrong size");
    if !accumulate {
        c.fill(0.0);
    }
    let mut acc = vec![0.0; m.max(n)];
    for k0 in (0..k).step_by(KC) {
        let k1 = (k0 + KC).min(k);
        acc.fill(0.0);
        if m == 1 {
            // c[j] = Σ_p a[p]·b[p, j]: row by row of b.
            for p in k0..k1 {
                let ap = a.at(0, p);
                match b.row(p) {
                    Some(row) => {
                        for (s, v) in acc[..n].iter_mut().zip(row) {
                            *s += ap * v;
                        }
                    }
                    None => {
                        for (j, s) in acc[..n].iter_mut().enumerate() {
                            *s += ap * b.at(p, j);
                        }
                    }
                }
            }
        } else {
            // c[i] = Σ_p a[i, p]·b[p]: one dot product per row of a.
            let column: Vec<f64> = (k0..k1).map(|p| b.at(p, 0)).collect();
            for (i, s) in acc[..m].iter_mut().enumerate() {
                match a.row(i) {
                    Some(row) => {
                        for (x, y) in row[k0..k1].iter().zip(&column) {
                            *s += x * y;
                        }
                    }
                    None => {
                        for (p, y) in (k0..k1).zip(&column) {
                            *s += a.at(i, p) * y;
                        }
                    }
                }
            }
        }
        for (o, s) in c.iter_mut().zip(&acc) {
            *o += s;
        }
    }
}

/// [`gemm_tiled`] compiled for AVX2, with taller tiles (8 × 4 accumulators
/// fill eight 256-bit registers). Multiplies and adds stay separate (no
/// FMA), in the same order, so the results are bit-for-bit those of the
/// baseline path.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn gemm_avx2(a: MatRef<'_>, b: MatRef<'_>, c: &mut [f64], accumulate: bool, upper: bool) {
    gemm_tiled::<8>(a, b, c, accumulate, upper);
}

/// Packs panels of both operands and runs the `MR × NR` micro-kernel over
/// them. Every output sums its products in order of the inner index, so the
/// tile shape does not change the result.
#[inline(always)]
fn gemm_tiled<const MR: usize>(
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [f64],
    accumulate: bool,
    upper: bool,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "inner dimensions differ");
    assert_eq!(c.len(), m * n, "output of the wrong size");
    if !accumulate {
        c.fill(0.0);
    }
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let panels = n.div_ceil(NR);
    let mut bp = vec![0.0; panels * KC.min(k) * NR];
    let mut ap = vec![0.0; KC.min(k) * MR];
    for k0 in (0..k).step_by(KC) {
        let kc = KC.min(k - k0);
        // Pack B[k0..k0+kc, :] as panels of NR columns, zero-padded.
        for jp in 0..panels {
            let panel = &mut bp[jp * kc * NR..(jp + 1) * kc * NR];
            for (p, dst) in panel.chunks_exact_mut(NR).enumerate() {
                for (jj, d) in dst.iter_mut().enumerate() {
                    let j = jp * NR + jj;
                    *d = if j < n { b.at(k0 + p, j) } else { 0.0 };
                }
            }
        }
        for i0 in (0..m).step_by(MR) {
            let mr = MR.min(m - i0);
            let apanel = &mut ap[..kc * MR];
            for (p, dst) in apanel.chunks_exact_mut(MR).enumerate() {
                for (ii, d) in dst.iter_mut().enumerate() {
                    *d = if ii < mr { a.at(i0 + ii, k0 + p) } else { 0.0 };
                }
            }
            for jp in 0..panels {
                if upper && (jp + 1) * NR <= i0 {
                    continue;
                }
                let nr = NR.min(n - jp * NR);
                let acc = micro_kernel::<MR>(apanel, &bp[jp * kc * NR..(jp + 1) * kc * NR]);
                for (ii, row) in acc.iter().enumerate().take(mr) {
                    let out = &mut c[(i0 + ii) * n + jp * NR..][..nr];
                    for (o, v) in out.iter_mut().zip(row) {
                        *o += v;
                    }
                }
            }
        }
    }
}

/// Σ over p of the outer product of `a[p]` (MR values) and `b[p]` (NR
/// values), in order of p.
#[inline(always)]
fn micro_kernel<const MR: usize>(a: &[f64], b: &[f64]) -> [[f64; NR]; MR] {
    let mut acc = [[0.0; NR]; MR];
    for (av, bv) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
        let av: &[f64; MR] = av.try_into().expect("MR values");
        let bv: &[f64; NR] = bv.try_into().expect("NR values");
        for ii in 0..MR {
            for jj in 0..NR {
                acc[ii][jj] += av[ii] * bv[jj];
            }
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: MatRef<'_>, b: MatRef<'_>) -> Vec<f64> {
        let mut c = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                c[i * b.cols + j] = (0..a.cols).map(|p| a.at(i, p) * b.at(p, j)).sum();
            }
        }
        c
    }

    #[test]
    fn matches_naive_product_all_shapes_and_transposes() {
        let mut rng = crate::rng::SplitMix64::new(1);
        for (m, k, n) in [
            (1, 1, 1),
            (3, 5, 2),
            (7, 300, 9),
            (4, 4, 4),
            (10, 1, 13),
            (0, 3, 2),
        ] {
            let a: Vec<f64> = (0..m * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let b: Vec<f64> = (0..k * n).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let at: Vec<f64> = MatRef::new(&a, m, k).t().to_vec();
            let bt: Vec<f64> = MatRef::new(&b, k, n).t().to_vec();
            let want = naive(MatRef::new(&a, m, k), MatRef::new(&b, k, n));
            for (av, bv) in [
                (MatRef::new(&a, m, k), MatRef::new(&b, k, n)),
                (MatRef::new(&at, k, m).t(), MatRef::new(&b, k, n)),
                (MatRef::new(&a, m, k), MatRef::new(&bt, n, k).t()),
            ] {
                let mut c = vec![1.0; m * n];
                Cpu.matmul(av, bv, &mut c, false);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - y).abs() < 1e-12, "{m}×{k}×{n}: {x} vs {y}");
                }
                Cpu.matmul(av, bv, &mut c, true);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - 2.0 * y).abs() < 1e-12);
                }
                if m == n {
                    // Xᵀ·X is symmetric: the upper triangle, mirrored.
                    let mut g = vec![0.0; m * m];
                    let x = MatRef::new(&at, k, m);
                    Cpu.symmetric_matmul(x.t(), x, &mut g);
                    let want = naive(x.t(), x);
                    for (u, v) in g.iter().zip(&want) {
                        assert!((u - v).abs() < 1e-12);
                    }
                    for i in 0..m {
                        for j in 0..m {
                            assert_eq!(g[i * m + j], g[j * m + i]);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn tile_shapes_give_the_same_bits() {
        let mut rng = crate::rng::SplitMix64::new(9);
        let (m, k, n) = (37, 700, 29);
        let a: Vec<f64> = (0..m * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let b: Vec<f64> = (0..k * n).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let (av, bv) = (MatRef::new(&a, m, k), MatRef::new(&b, k, n));
        // The matrix-vector path too.
        for (rows, cols) in [(1, n), (m, 1)] {
            let (a1, b1) = (
                MatRef::new(&a[..rows * k], rows, k),
                MatRef::new(&b[..k * cols], k, cols),
            );
            let mut thin = vec![0.0; rows * cols];
            let mut tiled = vec![0.0; rows * cols];
            Cpu.matmul(a1, b1, &mut thin, false);
            gemm_tiled::<4>(a1, b1, &mut tiled, false, false);
            assert!(
                thin.iter()
                    .zip(&tiled)
                    .all(|(x, y)| x.to_bits() == y.to_bits())
            );
        }
        let mut c4 = vec![0.0; m * n];
        let mut c8 = vec![0.0; m * n];
        gemm_tiled::<4>(av, bv, &mut c4, false, false);
        gemm_tiled::<8>(av, bv, &mut c8, false, false);
        assert!(c4.iter().zip(&c8).all(|(x, y)| x.to_bits() == y.to_bits()));
        let mut c = vec![0.0; m * n];
        Cpu.matmul(av, bv, &mut c, false);
        assert_eq!(c, c4);
    }

    impl MatRef<'_> {
        fn to_vec(self) -> Vec<f64> {
            (0..self.rows)
                .flat_map(|i| (0..self.cols).map(move |j| self.at(i, j)))
                .collect()
        }
    }
}
