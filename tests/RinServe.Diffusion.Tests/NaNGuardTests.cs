using RinServe.Diffusion;

namespace RinServe.Diffusion.Tests;

/// <summary>A NaN anywhere in the sampler must fail the batch, never come out as a black image.</summary>
public class NaNGuardTests
{
    /// <summary>A network whose every prediction is NaN.</summary>
    private sealed class NaNDenoiser(ModelSpec spec) : IDenoiser
    {
        public ModelSpec Spec { get; } = spec;

        public void Denoise(
            int batch, ReadOnlySpan<float> x, ReadOnlySpan<float> gamma, ReadOnlySpan<long> classIds, ReadOnlySpan<float> latentsIn, Span<float> pred, Span<float> latentsOut)
        {
            pred.Fill(float.NaN);
            latentsOut.Clear();
        }
    }

    [Theory]
    [InlineData("ddim")]
    [InlineData("ddpm")]
    public void Sampler_that_meets_a_NaN_throws_instead_of_returning_a_black_image(string kind)
    {
        var sampler = new RinSampler(new NaNDenoiser(ToyDenoiser.MakeSpec()));
        var thrown = Assert.Throws<SamplingFailedException>(() => sampler.Generate(new SamplerSettings(4, kind, "cosine", 0f), [new ImageRequest(1, 7)]));
        Assert.Contains("NaN", thrown.Message);
    }

    [Theory]
    [InlineData("sigmoid@-3,3,1e-308", 3)]
    [InlineData("sigmoid@-3,3,0.01", 50)]
    public void Sampler_refuses_a_schedule_that_stays_at_gamma_1_for_its_steps(string schedule, int steps)
    {
        var sampler = new RinSampler(new ToyDenoiser(ToyDenoiser.MakeSpec()) { Record = false });
        var thrown = Assert.Throws<ArgumentException>(() => sampler.Generate(new SamplerSettings(steps, "ddim", schedule, 0f), [new ImageRequest(1, 7)]));
        Assert.Contains("γ = 1", thrown.Message);
    }
}
