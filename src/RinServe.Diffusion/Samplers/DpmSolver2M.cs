using System.Runtime.Intrinsics;

namespace RinServe.Diffusion;

/// <summary>
/// DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2; k-diffusion's <c>sample_dpmpp_2m</c>): the multistep second-order solver in
/// data prediction, made for guided sampling with few steps. In the VP form here, with λ = log(√γ/√(1−γ)), h = λ' − λ and
/// r = h_previous / h, the data estimate D = (1 + 1/2r)·x̂0 − (1/2r)·x̂0_previous takes a DDIM step, x_t' = √γ'·D + √(1−γ')·ε̂(D)
/// (first order, D = x̂0, is exactly DDIM). The first step has no history, and the last step is first order too (the
/// "lower-order final step": the jump to t = 0 is the schedule's largest in λ, where extrapolating is unstable). γ is
/// clipped to [1e-9, 1 − 1e-9] for λ (<see cref="StepTimes.HalfLogSnr"/>). The row keeps the previous x̂0 as its history.
/// </summary>
public sealed class DpmSolver2M : Sampler
{
    private DpmSolver2M()
    {
    }

    public static DpmSolver2M Instance { get; } = new();

    public override string Name => "dpmpp-2m";

    public override IReadOnlyList<string> Aliases => ["dpmpp_2m", "dpm++2m"];

    public override int HistoryImages => 1;

    internal override (double Sum, double SumOfSquares) Step(in StepTimes times, in Denoising denoising, in RowStep row)
    {
        var (current, previous) = Weights(times);
        var update = new Update(row.History, current, previous, (float)Math.Sqrt(times.GammaNext), (float)Math.Sqrt(1.0 - times.GammaNext));
        return RowKernel.Run(denoising, row, ref update);
    }

    /// <summary>D = current·x̂0 − previous·x̂0_previous at this step (1 and 0 for a first-order step).</summary>
    internal static (float Current, float Previous) Weights(in StepTimes times)
    {
        if (times.IsFirst || times.IsLast)
        {
            return (1f, 0f);
        }

        var lambda = StepTimes.HalfLogSnr(times.Gamma);
        var h = StepTimes.HalfLogSnr(times.GammaNext) - lambda;
        var r = (lambda - StepTimes.HalfLogSnr(times.GammaPrevious)) / h;
        return ((float)(1 + 1 / (2 * r)), (float)(1 / (2 * r)));
    }

    private readonly ref struct Update(Span<float> history, float current, float previous, float sqrtGammaNext, float sqrtOneMinusGammaNext) : IPixelUpdate
    {
        private readonly Span<float> _previousX0 = history;
        private readonly Vector256<float> _current = Vector256.Create(current);
        private readonly Vector256<float> _previous = Vector256.Create(previous);
        private readonly Vector256<float> _sgn = Vector256.Create(sqrtGammaNext);
        private readonly Vector256<float> _s1gn = Vector256.Create(sqrtOneMinusGammaNext);

        public Vector256<float> Next(in DenoisingLanes d, Vector256<float> x, Vector256<float> x0, int i)
        {
            var data = _current * x0 - _previous * Lanes.Load(_previousX0, i);
            Lanes.Store(x0, _previousX0, i);
            return _sgn * data + _s1gn * d.Eps(x, data);
        }
    }
}
