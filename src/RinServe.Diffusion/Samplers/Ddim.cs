using System.Runtime.Intrinsics;

namespace RinServe.Diffusion;

/// <summary>DDIM with η = 0 (Song et al. 2021): x_t' = √γ'·x̂0 + √(1−γ')·ε̂. Deterministic; the contract's default.</summary>
public sealed class Ddim : Sampler
{
    private Ddim()
    {
    }

    public static Ddim Instance { get; } = new();

    public override string Name => "ddim";

    internal override (double Sum, double SumOfSquares) Step(in StepTimes times, in Denoising denoising, in RowStep row)
    {
        var update = new Update((float)Math.Sqrt(times.GammaNext), (float)Math.Sqrt(1.0 - times.GammaNext));
        return RowKernel.Run(denoising, row, ref update);
    }

    private readonly struct Update(float sqrtGammaNext, float sqrtOneMinusGammaNext) : IPixelUpdate
    {
        private readonly Vector256<float> _sgn = Vector256.Create(sqrtGammaNext);
        private readonly Vector256<float> _s1gn = Vector256.Create(sqrtOneMinusGammaNext);

        public Vector256<float> Next(in DenoisingLanes d, Vector256<float> x, Vector256<float> x0, int i) => _sgn * x0 + _s1gn * d.Eps(x, x0);
    }
}
