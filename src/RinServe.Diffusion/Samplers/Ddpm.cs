using System.Runtime.Intrinsics;

namespace RinServe.Diffusion;

/// <summary>
/// The DDPM ancestral step (Ho et al. 2020, eq. 11) in γ form: α = clip(γ/γ', 0, 1), x_t' = (x − (1−α)/√(1−γ)·ε̂)/√α + √var·z,
/// with var = 1 − α (<c>ddpm</c>) or the posterior's (1−γ')/(1−γ)·(1−α) (<c>ddpm-small</c>).
/// </summary>
public sealed class Ddpm : Sampler
{
    private readonly bool _small;

    private Ddpm(bool small) => _small = small;

    public static Ddpm LargeVariance { get; } = new(small: false);

    public static Ddpm SmallVariance { get; } = new(small: true);

    public override string Name => _small ? "ddpm-small" : "ddpm";

    public override IReadOnlyList<string> Aliases => _small ? ["ddpm_small"] : [];

    public override bool Stochastic => true;

    internal override (double Sum, double SumOfSquares) Step(in StepTimes times, in Denoising denoising, in RowStep row)
    {
        var (g, gNext) = (times.Gamma, times.GammaNext);
        var alpha = Math.Clamp(g / gNext, 0.0, 1.0);
        var variance = _small ? (1.0 - gNext) / (1.0 - g) * (1.0 - alpha) : 1.0 - alpha;
        var update = new Update(row.Z, (float)((1.0 - alpha) / Math.Sqrt(1.0 - g)), (float)Math.Sqrt(alpha), (float)Math.Sqrt(variance));
        return RowKernel.Run(denoising, row, ref update);
    }

    private readonly ref struct Update(ReadOnlySpan<float> z, float epsCoefficient, float sqrtAlpha, float sigma) : IPixelUpdate
    {
        private readonly ReadOnlySpan<float> _z = z;
        private readonly Vector256<float> _ce = Vector256.Create(epsCoefficient);
        private readonly Vector256<float> _sa = Vector256.Create(sqrtAlpha);
        private readonly Vector256<float> _sigma = Vector256.Create(sigma);

        public Vector256<float> Next(in DenoisingLanes d, Vector256<float> x, Vector256<float> x0, int i) =>
            (x - _ce * d.Eps(x, x0)) / _sa + _sigma * Lanes.Load(_z, i); // μ + √var·z
    }
}
