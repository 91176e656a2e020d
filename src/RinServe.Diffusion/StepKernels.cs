using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace RinServe.Diffusion;

/// <summary>The per-step scalars of Algorithm 3, computed in float64 and cast once to float32.</summary>
internal readonly record struct StepCoefficients(
    Prediction Prediction,
    float SqrtGamma,
    float SqrtOneMinusGamma,
    float ClipBound,
    bool Guided,
    float GuidanceCond,
    float GuidanceUncond,
    bool Stochastic,
    float SqrtGammaNext,
    float SqrtOneMinusGammaNext,
    float EpsCoefficient,
    float SqrtAlpha,
    float Sigma)
{
    /// <summary>γ(t) of the step, the network's noise-level input.</summary>
    public float Gamma { get; init; }

    /// <summary>
    /// Step <paramref name="i"/> of the settings' steps: t = 1 − i/n and t' = 1 − (i+1)/n, γ from the
    /// schedule, every scalar in float64 and cast once (the reference does the same).
    /// </summary>
    public static StepCoefficients At(int i, Schedule schedule, SamplerSettings settings, ModelSpec spec)
    {
        var steps = settings.Steps;
        var g = schedule.Gamma(1.0 - (double)i / steps);
        var gNext = schedule.Gamma(Math.Max(1.0 - (double)(i + 1) / steps, 0.0));

        // DDPM ancestral step (Ho et al. 2020, eq. 11) in γ form: α = clip(g/g', 0, 1).
        var alpha = Math.Clamp(g / gNext, 0.0, 1.0);
        var variance = settings.Sampler == SamplerKind.DdpmSmallVariance
            ? (1.0 - gNext) / (1.0 - g) * (1.0 - alpha)
            : 1.0 - alpha;
        return new StepCoefficients(
            spec.Prediction,
            SqrtGamma: (float)Math.Sqrt(g),
            SqrtOneMinusGamma: (float)Math.Sqrt(1.0 - g),
            ClipBound: spec.InputScale,
            Guided: settings.Guidance > 0,
            GuidanceCond: (float)(1.0 + settings.Guidance),
            GuidanceUncond: settings.Guidance,
            Stochastic: settings.Sampler != SamplerKind.Ddim,
            SqrtGammaNext: (float)Math.Sqrt(gNext),
            SqrtOneMinusGammaNext: (float)Math.Sqrt(1.0 - gNext),
            EpsCoefficient: (float)((1.0 - alpha) / Math.Sqrt(1.0 - g)),
            SqrtAlpha: (float)Math.Sqrt(alpha),
            Sigma: (float)Math.Sqrt(variance)) { Gamma = (float)g };
    }
}

/// <summary>
/// Algorithm 3's elementwise work fused into single passes over memory: at high resolution the network
/// is cheap enough that five separate passes per step would cost more than the target overhead.
/// Only IEEE add/sub/mul/div/min/max, lane by lane, so vector and scalar tails give identical bits; sums
/// use a fixed 8 lanes (Vector256, emulated where the hardware is narrower), so every machine adds in the
/// same order and a seed gives the same image everywhere.
/// </summary>
internal static class StepKernels
{
    // Partial sums stay in float32 for this many elements, then move to float64 (accuracy at 1M pixels).
    private const int StatisticsBlock = 2048;

    /// <summary>Σx and Σx² of one example, float32 lanes flushed to float64 every block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot SIMD loop: skip the slow tier-0 code of the first calls
    public static (double Sum, double SumOfSquares) Statistics(ReadOnlySpan<float> x)
    {
        double sum = 0, squares = 0;
        for (var start = 0; start < x.Length; start += StatisticsBlock)
        {
            var block = x.Slice(start, Math.Min(StatisticsBlock, x.Length - start));
            var vs = Vector256<float>.Zero;
            var vq = Vector256<float>.Zero;
            var i = 0;
            for (; i <= block.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var v = Vector256.Create(block[i..]);
                vs += v;
                vq += v * v;
            }

            double blockSum = 0, blockSquares = 0;
            for (var lane = 0; lane < Vector256<float>.Count; lane++)
            {
                blockSum += vs[lane];
                blockSquares += vq[lane];
            }

            for (; i < block.Length; i++)
            {
                blockSum += block[i];
                blockSquares += (double)block[i] * block[i];
            }

            sum += blockSum;
            squares += blockSquares;
        }

        return (sum, squares);
    }

    /// <summary>
    /// One step for one example: guidance mix, x̂0 from the prediction, clip to ±b, ε̂, then the DDIM or
    /// DDPM update of x in place. Writes x̂0 when <paramref name="x0"/> is not empty. Returns Σx and Σx²
    /// of the new x, so the next step's normalization needs no extra pass.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot SIMD loop: skip the slow tier-0 code of the first calls
    public static (double Sum, double SumOfSquares) Update(
        in StepCoefficients k, Span<float> x, ReadOnlySpan<float> predCond, ReadOnlySpan<float> predUncond, ReadOnlySpan<float> z, Span<float> x0)
    {
        double sum = 0, squares = 0;
        for (var start = 0; start < x.Length; start += StatisticsBlock)
        {
            var length = Math.Min(StatisticsBlock, x.Length - start);
            var (blockSum, blockSquares) = UpdateBlock(
                k,
                x.Slice(start, length),
                predCond.Slice(start, length),
                k.Guided ? predUncond.Slice(start, length) : default,
                k.Stochastic ? z.Slice(start, length) : default,
                x0.IsEmpty ? default : x0.Slice(start, length));
            sum += blockSum;
            squares += blockSquares;
        }

        return (sum, squares);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot SIMD loop: skip the slow tier-0 code of the first calls
    private static (double Sum, double SumOfSquares) UpdateBlock(
        in StepCoefficients k, Span<float> x, ReadOnlySpan<float> predCond, ReadOnlySpan<float> predUncond, ReadOnlySpan<float> z, Span<float> x0)
    {
        var writeX0 = !x0.IsEmpty;
        var vs = Vector256<float>.Zero;
        var vq = Vector256<float>.Zero;
        var i = 0;
        {
            var sg = Vector256.Create(k.SqrtGamma);
            var s1g = Vector256.Create(k.SqrtOneMinusGamma);
            var hi = Vector256.Create(k.ClipBound);
            var lo = Vector256.Create(-k.ClipBound);
            var gc = Vector256.Create(k.GuidanceCond);
            var gu = Vector256.Create(k.GuidanceUncond);
            var sgn = Vector256.Create(k.SqrtGammaNext);
            var s1gn = Vector256.Create(k.SqrtOneMinusGammaNext);
            var ce = Vector256.Create(k.EpsCoefficient);
            var sa = Vector256.Create(k.SqrtAlpha);
            var sigma = Vector256.Create(k.Sigma);
            for (; i <= x.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var xv = Vector256.Create(x[i..]);
                var p = Vector256.Create(predCond[i..]);
                if (k.Guided)
                {
                    // Classifier-free guidance (Ho & Salimans 2022): (1+w)·pred(class) − w·pred(null).
                    p = gc * p - gu * Vector256.Create(predUncond[i..]);
                }

                var x0v = k.Prediction switch
                {
                    Prediction.Eps => (xv - s1g * p) / sg, // x̂0 = (x − √(1−g)·ε̂)/√g
                    Prediction.X => p,
                    _ => sg * xv - s1g * p, // v-prediction (Salimans & Ho 2022): x̂0 = √g·x − √(1−g)·v
                };
                x0v = Vector256.Min(Vector256.Max(x0v, lo), hi);
                var eps = (xv - sg * x0v) / s1g; // ε̂ = (x − √g·x̂0)/√(1−g)
                xv = k.Stochastic
                    ? (xv - ce * eps) / sa + sigma * Vector256.Create(z[i..]) // DDPM: μ + √var·z
                    : sgn * x0v + s1gn * eps; // DDIM (η = 0): √g'·x̂0 + √(1−g')·ε̂
                xv.CopyTo(x[i..]);
                vs += xv;
                vq += xv * xv;
                if (writeX0)
                {
                    x0v.CopyTo(x0[i..]);
                }
            }
        }

        double sum = 0, squares = 0;
        for (var lane = 0; lane < Vector256<float>.Count; lane++)
        {
            sum += vs[lane];
            squares += vq[lane];
        }

        for (; i < x.Length; i++)
        {
            var xs = x[i];
            var p = predCond[i];
            if (k.Guided)
            {
                p = k.GuidanceCond * p - k.GuidanceUncond * predUncond[i];
            }

            var x0s = k.Prediction switch
            {
                Prediction.Eps => (xs - k.SqrtOneMinusGamma * p) / k.SqrtGamma,
                Prediction.X => p,
                _ => k.SqrtGamma * xs - k.SqrtOneMinusGamma * p,
            };
            x0s = Math.Min(Math.Max(x0s, -k.ClipBound), k.ClipBound);
            var eps = (xs - k.SqrtGamma * x0s) / k.SqrtOneMinusGamma;
            x[i] = k.Stochastic
                ? (xs - k.EpsCoefficient * eps) / k.SqrtAlpha + k.Sigma * z[i]
                : k.SqrtGammaNext * x0s + k.SqrtOneMinusGammaNext * eps;
            sum += x[i];
            squares += (double)x[i] * x[i];
            if (writeX0)
            {
                x0[i] = x0s;
            }
        }

        return (sum, squares);
    }
}
