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
    public void Vector_philox_matches_the_scalar_reference_lane_by_lane()
    {
        var lanes = System.Numerics.Vector<uint>.Count;
        var counters = Enumerable.Range(0, lanes).Select(i => 0xFFFFFFF0u + (uint)i * 3).ToArray();
        PhiloxNoise.Philox(
            new System.Numerics.Vector<uint>(counters), new System.Numerics.Vector<uint>(7), new System.Numerics.Vector<uint>(9),
            new System.Numerics.Vector<uint>(0x52494E32), 0xDEADBEEF, 0x12345678, out var w0, out var w1, out var w2, out var w3);
        Span<uint> expected = stackalloc uint[4];
        for (var lane = 0; lane < lanes; lane++)
        {
            PhiloxNoise.Philox(counters[lane], 7, 9, 0x52494E32, 0xDEADBEEF, 0x12345678, expected);
            Assert.Equal(expected.ToArray(), new[] { w0[lane], w1[lane], w2[lane], w3[lane] });
        }
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
    public void Gaussian_transform_matches_double_precision_box_muller_on_the_same_philox_bits()
    {
        var values = new float[1500]; // two whole chunks of 512 and a partial one
        PhiloxNoise.Instance.Fill(12345, 7, values);
        Span<uint> block = stackalloc uint[4];
        const int Pairs = 256;
        for (var e = 0; e < values.Length; e++)
        {
            var chunk = e / (2 * Pairs);
            var pair = e % Pairs;
            var counter = (ulong)(chunk * (Pairs / 2) + pair % (Pairs / 2));
            PhiloxNoise.Philox((uint)counter, (uint)(counter >> 32), 8, 0x52494E32, 12345, 0, block);
            var word = pair < Pairs / 2 ? 0 : 2;
            var radiusBits = block[word];
            var angleBits = block[word + 1];
            var u1 = ((radiusBits >> 9) + 0.5) / 8388608.0;
            var quadrant = angleBits >> 30;
            var fraction = (((angleBits >> 7) & 0x7FFFFF) + 0.5) / 8388608.0;
            var theta = (quadrant + fraction) * Math.PI / 2;
            var r = Math.Sqrt(-2 * Math.Log(u1));
            var expected = e % (2 * Pairs) < Pairs ? r * Math.Cos(theta) : r * Math.Sin(theta);
            Assert.True(Math.Abs(expected - values[e]) < 2e-6, $"element {e}: {values[e]} vs {expected}");
        }
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
