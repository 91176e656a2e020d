using RinServe.Diffusion;

namespace RinServe.Diffusion.Tests;

public class NoiseTests
{
    [Fact]
    public void Philox4x32_10_matches_random123_known_answers()
    {
        Span<uint> output = stackalloc uint[4];
        PhiloxNoise.Philox(0, 0, 0, 0, 0, 0, output);
        Assert.Equal([0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u], output.ToArray());

        PhiloxNoise.Philox(uint.MaxValue, uint.MaxValue, uint.MaxValue, uint.MaxValue, uint.MaxValue, uint.MaxValue, output);
        Assert.Equal([0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu], output.ToArray());

        PhiloxNoise.Philox(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, output);
        Assert.Equal([0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u], output.ToArray());
    }

    [Fact]
    public void Noise_is_a_pure_function_of_seed_step_and_element()
    {
        var a = new float[1001];
        var b = new float[1001];
        var prefix = new float[37];
        PhiloxNoise.Instance.Fill(42, 3, a);
        PhiloxNoise.Instance.Fill(42, 3, b);
        PhiloxNoise.Instance.Fill(42, 3, prefix);
        Assert.Equal(a, b);
        Assert.Equal(a[..37], prefix);

        PhiloxNoise.Instance.Fill(43, 3, b);
        Assert.NotEqual(a, b);
        PhiloxNoise.Instance.Fill(42, 4, b);
        Assert.NotEqual(a, b);
        PhiloxNoise.Instance.Fill(42, INoiseSource.InitialStep, b);
        Assert.NotEqual(a, b);
    }

    [Fact]
    public void Noise_is_standard_normal()
    {
        var values = new float[200_000];
        PhiloxNoise.Instance.Fill((1UL << 63) - 1, 0, values);
        double sum = 0, sumSquares = 0, sumFourth = 0;
        foreach (var v in values)
        {
            sum += v;
            sumSquares += v * v;
            sumFourth += (double)v * v * v * v;
        }

        var mean = sum / values.Length;
        var variance = sumSquares / values.Length - mean * mean;
        Assert.InRange(mean, -0.01, 0.01);
        Assert.InRange(variance, 0.98, 1.02);
        Assert.InRange(sumFourth / values.Length, 2.9, 3.1); // kurtosis of a normal
        Assert.All(values, v => Assert.True(float.IsFinite(v)));
    }
}
