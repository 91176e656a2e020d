using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace RinServe.Diffusion;

/// <summary>
/// Where a row is on its own schedule: step <see cref="Index"/> of <see cref="Steps"/> goes from t = 1 − i/n to
/// t' = 1 − (i+1)/n. γ at t, at t' and at the previous step's t (NaN at the first step), in float64.
/// </summary>
public readonly record struct StepTimes(int Index, int Steps, double Gamma, double GammaNext, double GammaPrevious)
{
    public bool IsFirst => Index == 0;

    public bool IsLast => Index == Steps - 1;

    /// <summary>The step's time t (1: pure noise), where γ is read.</summary>
    public double T => TimeOf(Index, Steps);

    /// <summary>t of step <paramref name="index"/> of <paramref name="steps"/>: 1 − i/n, at least 0. The one definition the schedule, the guidance interval and the rows read.</summary>
    public static double TimeOf(int index, int steps) => Math.Max(1.0 - (double)index / steps, 0.0);

    public static StepTimes At(Schedule schedule, int index, int steps)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        double GammaOf(int i) => schedule.Gamma(TimeOf(i, steps));
        return new(index, steps, GammaOf(index), GammaOf(index + 1), index > 0 ? GammaOf(index - 1) : double.NaN);
    }

    /// <summary>
    /// λ = log(√γ/√(1−γ)), the half log-SNR that multistep solvers step in. γ is clipped to [1e-9, 1 − 1e-9] first, so the
    /// ends of a schedule (γ = 1 at t = 0 for linear and window schedules) give a finite λ (|λ| ≤ 10.4).
    /// </summary>
    public static double HalfLogSnr(double gamma)
    {
        var g = Math.Clamp(gamma, Schedule.MinGamma, 1 - Schedule.MinGamma);
        return 0.5 * (Math.Log(g) - Math.Log(1 - g));
    }
}

/// <summary>
/// The x̂0 every sampler starts from, one definition for all (contract, "Sampling"): the classifier-free guidance mix
/// (1+w)·pred(class) − w·pred(null), x̂0 from the model's parameterization, then the clip to ±b. Scalars in float64, cast once.
/// </summary>
internal readonly record struct Denoising(
    Prediction Prediction, float SqrtGamma, float SqrtOneMinusGamma, float ClipBound, bool Guided, float GuidanceCond, float GuidanceUncond)
{
    public static Denoising At(double gamma, float guidance, ModelSpec spec) => new(
        spec.Prediction,
        (float)Math.Sqrt(gamma),
        (float)Math.Sqrt(1.0 - gamma),
        spec.InputScale,
        guidance > 0,
        (float)(1.0 + guidance),
        guidance);

    /// <summary>A row's step: its guidance weight where its interval holds the step's t, none (the class prediction alone) elsewhere.</summary>
    public static Denoising At(in StepTimes times, SamplerSettings settings, ModelSpec spec) =>
        At(times.Gamma, (settings.GuidanceInterval ?? spec.GuidanceInterval).WeightAt(times.T, settings.Guidance), spec);
}

/// <summary><see cref="Denoising"/> broadcast to vector lanes once per row and step.</summary>
internal readonly struct DenoisingLanes(in Denoising k)
{
    private readonly Prediction _prediction = k.Prediction;
    private readonly bool _guided = k.Guided;
    private readonly Vector256<float> _sg = Vector256.Create(k.SqrtGamma);
    private readonly Vector256<float> _s1g = Vector256.Create(k.SqrtOneMinusGamma);
    private readonly Vector256<float> _hi = Vector256.Create(k.ClipBound);
    private readonly Vector256<float> _lo = Vector256.Create(-k.ClipBound);
    private readonly Vector256<float> _gc = Vector256.Create(k.GuidanceCond);
    private readonly Vector256<float> _gu = Vector256.Create(k.GuidanceUncond);

    public bool Guided => _guided;

    /// <summary>The clipped x̂0 of 8 pixels from x_t and the prediction(s).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector256<float> X0(Vector256<float> x, Vector256<float> p, Vector256<float> pUncond)
    {
        if (_guided)
        {
            p = _gc * p - _gu * pUncond; // classifier-free guidance (Ho & Salimans 2022)
        }

        var x0 = _prediction switch
        {
            Prediction.Eps => (x - _s1g * p) / _sg, // x̂0 = (x − √(1−g)·ε̂)/√g
            Prediction.X => p,
            _ => _sg * x - _s1g * p, // v-prediction (Salimans & Ho 2022): x̂0 = √g·x − √(1−g)·v
        };
        return Vector256.Min(Vector256.Max(x0, _lo), _hi);
    }

    /// <summary>ε̂ = (x − √g·d)/√(1−g): the noise that x_t implies for a data estimate d.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector256<float> Eps(Vector256<float> x, Vector256<float> d) => (x - _sg * d) / _s1g;
}

/// <summary>One row's memory for one step: x_t (updated in place), the prediction(s), z, the sampler's history, x̂0 out.</summary>
internal readonly ref struct RowStep(
    Span<float> x, ReadOnlySpan<float> predCond, ReadOnlySpan<float> predUncond, ReadOnlySpan<float> z, Span<float> history, Span<float> x0)
{
    public Span<float> X { get; } = x;

    public ReadOnlySpan<float> PredCond { get; } = predCond;

    /// <summary>The null-class prediction; empty without guidance.</summary>
    public ReadOnlySpan<float> PredUncond { get; } = predUncond;

    /// <summary>This step's N(0, I) noise; empty for deterministic samplers.</summary>
    public ReadOnlySpan<float> Z { get; } = z;

    /// <summary><see cref="Sampler.HistoryImages"/> images, one after another; empty when the sampler keeps none.</summary>
    public Span<float> History { get; } = history;

    /// <summary>Where the clipped x̂0 goes; empty when nobody reads it this step.</summary>
    public Span<float> X0 { get; } = x0;
}

/// <summary>A sampler's own arithmetic for 8 pixels at a time: x_t' from x_t and the clipped x̂0.</summary>
internal interface IPixelUpdate
{
    /// <summary>x_t' at pixels [i, i + 8); may read and write the sampler's other spans (z, history) at the same pixels via <see cref="Lanes"/>.</summary>
    Vector256<float> Next(in DenoisingLanes d, Vector256<float> x, Vector256<float> x0, int i);
}

/// <summary>Loads and stores of 8 lanes that also work on the last, shorter group of an image (zeros past its end).</summary>
internal static class Lanes
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load(ReadOnlySpan<float> span, int i) =>
        i <= span.Length - Vector256<float>.Count ? Vector256.Create(span[i..]) : LoadPartial(span, i);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector256<float> value, Span<float> span, int i)
    {
        if (i <= span.Length - Vector256<float>.Count)
        {
            value.CopyTo(span[i..]);
        }
        else
        {
            StorePartial(value, span, i);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Vector256<float> LoadPartial(ReadOnlySpan<float> span, int i)
    {
        Span<float> padded = stackalloc float[Vector256<float>.Count];
        padded.Clear();
        span[i..].CopyTo(padded);
        return Vector256.Create((ReadOnlySpan<float>)padded);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void StorePartial(Vector256<float> value, Span<float> span, int i)
    {
        for (var lane = 0; i + lane < span.Length; lane++)
        {
            span[i + lane] = value[lane];
        }
    }
}

/// <summary>
/// The one pass over a row's pixels that every sampler's step is: x̂0 (<see cref="DenoisingLanes.X0"/>), the sampler's
/// update, x̂0 out, and Σx, Σx² of the new x for the next step's normalization. Only IEEE add/sub/mul/div/min/max, lane by
/// lane, and sums in a fixed 8 lanes flushed to float64 every block, so every machine gives the same bits for a seed.
/// </summary>
internal static class RowKernel
{
    // Partial sums stay in float32 for this many elements, then move to float64 (accuracy at 1M pixels).
    internal const int StatisticsBlock = 2048;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot SIMD loop: skip the slow tier-0 code of the first calls
    public static (double Sum, double SumOfSquares) Run<TUpdate>(in Denoising k, in RowStep row, ref TUpdate update)
        where TUpdate : IPixelUpdate, allows ref struct
    {
        var d = new DenoisingLanes(k);
        var x = row.X;
        var predCond = row.PredCond;
        var predUncond = row.PredUncond;
        var x0Out = row.X0;
        var writeX0 = !x0Out.IsEmpty;
        const int width = 8;
        double sum = 0, squares = 0;
        for (var start = 0; start < x.Length; start += StatisticsBlock)
        {
            var end = Math.Min(start + StatisticsBlock, x.Length);
            var vs = Vector256<float>.Zero;
            var vq = Vector256<float>.Zero;
            var i = start;
            for (; i <= end - width; i += width)
            {
                var xv = Vector256.Create(x[i..]);
                var x0 = d.X0(xv, Vector256.Create(predCond[i..]), d.Guided ? Vector256.Create(predUncond[i..]) : default);
                var next = update.Next(d, xv, x0, i);
                next.CopyTo(x[i..]);
                vs += next;
                vq += next * next;
                if (writeX0)
                {
                    x0.CopyTo(x0Out[i..]);
                }
            }

            double blockSum = 0, blockSquares = 0;
            for (var lane = 0; lane < width; lane++)
            {
                blockSum += vs[lane];
                blockSquares += vq[lane];
            }

            if (i < end)
            {
                // The last few pixels of an image whose size is not a multiple of 8: the same arithmetic on padded lanes.
                var xv = Lanes.Load(x, i);
                var x0 = d.X0(xv, Lanes.Load(predCond, i), d.Guided ? Lanes.Load(predUncond, i) : default);
                var next = update.Next(d, xv, x0, i);
                Lanes.Store(next, x, i);
                for (var lane = 0; lane < end - i; lane++)
                {
                    blockSum += next[lane];
                    blockSquares += (double)next[lane] * next[lane];
                }

                if (writeX0)
                {
                    Lanes.Store(x0, x0Out, i);
                }
            }

            sum += blockSum;
            squares += blockSquares;
        }

        return (sum, squares);
    }
}
