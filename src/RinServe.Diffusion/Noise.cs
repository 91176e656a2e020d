using System.Runtime.CompilerServices;
using System.Numerics;

namespace RinServe.Diffusion;

/// <summary>
/// Standard normal noise as a pure function of (seed, step, element), so an image depends on its
/// own seed alone: not on the other requests in its batch, its position there, or the machine.
/// </summary>
public interface INoiseSource
{
    /// <summary>The step value that selects the initial x ~ N(0, I) rather than a DDPM step's z.</summary>
    const int InitialStep = -1;

    /// <summary>
    /// Fills <paramref name="destination"/> (one image, C·H·W values) with N(0, 1) samples. May be called
    /// from a thread pool thread (DDPM draws the next z while the network runs).
    /// </summary>
    void Fill(ulong seed, int step, Span<float> destination);
}

/// <summary>
/// Counter-based Gaussian noise: Philox4x32-10 (Salmon et al. 2011, "Parallel random numbers: as easy
/// as 1, 2, 3") keyed by the seed, counter (element block, step), then Box–Muller (1958) on pairs of
/// 23-bit uniforms. The transform uses its own log/sin/cos polynomials built from IEEE add, mul, div and
/// sqrt only, lane by lane, so every machine (any SIMD width, FMA or not) gives the same bits.
/// Stateless and thread-safe.
/// </summary>
public sealed class PhiloxNoise : INoiseSource
{
    public static PhiloxNoise Instance { get; } = new();

    // Philox4x32 round constants (Random123 reference values).
    private const uint M0 = 0xD2511F53;
    private const uint M1 = 0xCD9E8D57;
    private const uint W0 = 0x9E3779B9;
    private const uint W1 = 0xBB67AE85;

    // Tags the stream so this generator's numbers never coincide with another use of the same key.
    private const uint StreamTag = 0x52494E32; // "RIN2"

    // One chunk is Pairs Box–Muller pairs: outputs [0, Pairs) take r·cos θ, [Pairs, 2·Pairs) take r·sin θ.
    private const int Pairs = 256;
    private const int ChunkLength = 2 * Pairs;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot SIMD loop: skip the slow tier-0 code of the first calls
    public void Fill(ulong seed, int step, Span<float> destination)
    {
        var key0 = (uint)seed;
        var key1 = (uint)(seed >> 32);
        var stepCounter = unchecked((uint)(step + 1)); // InitialStep (-1) maps to 0.
        Span<uint> radiusBits = stackalloc uint[Pairs];
        Span<uint> angleBits = stackalloc uint[Pairs];
        Span<float> partial = stackalloc float[ChunkLength];
        var lanes = Vector<uint>.Count;
        var laneIndex = Vector<uint>.Indices;
        for (var start = 0; start < destination.Length; start += ChunkLength)
        {
            // Counter m of chunk c feeds pairs m (words 0, 1) and Pairs/2 + m (words 2, 3).
            var chunkBase = (ulong)(start / ChunkLength) * (Pairs / 2);
            for (var m = 0; m < Pairs / 2; m += lanes)
            {
                var counter = chunkBase + (ulong)m;
                Philox(
                    new Vector<uint>((uint)counter) + laneIndex,
                    new Vector<uint>((uint)(counter >> 32)),
                    new Vector<uint>(stepCounter),
                    new Vector<uint>(StreamTag),
                    key0,
                    key1,
                    out var w0,
                    out var w1,
                    out var w2,
                    out var w3);
                w0.CopyTo(radiusBits[m..]);
                w1.CopyTo(angleBits[m..]);
                w2.CopyTo(radiusBits[(Pairs / 2 + m)..]);
                w3.CopyTo(angleBits[(Pairs / 2 + m)..]);
            }

            var count = Math.Min(ChunkLength, destination.Length - start);
            if (count == ChunkLength)
            {
                BoxMuller(radiusBits, angleBits, destination.Slice(start, ChunkLength));
            }
            else
            {
                // The tail computes a whole chunk, so an element's value never depends on the length asked for.
                BoxMuller(radiusBits, angleBits, partial);
                partial[..count].CopyTo(destination[start..]);
            }
        }
    }

    /// <summary>Box–Muller: r = √(−2 ln u1), θ = 2π·u2; z = r·cos θ and r·sin θ.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot SIMD loop: skip the slow tier-0 code of the first calls
    private static void BoxMuller(ReadOnlySpan<uint> radiusBits, ReadOnlySpan<uint> angleBits, Span<float> destination)
    {
        var width = Vector<float>.Count;
        var i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            for (; i <= Pairs - width; i += width)
            {
                var (r, sin, cos) = Transform(new Vector<uint>(radiusBits[i..]), new Vector<uint>(angleBits[i..]));
                (r * cos).CopyTo(destination[i..]);
                (r * sin).CopyTo(destination[(Pairs + i)..]);
            }
        }

        for (; i < Pairs; i++)
        {
            var (r, sin, cos) = Transform(new Vector<uint>(radiusBits[i]), new Vector<uint>(angleBits[i]));
            destination[i] = r[0] * cos[0];
            destination[Pairs + i] = r[0] * sin[0];
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot SIMD loop: skip the slow tier-0 code of the first calls
    private static (Vector<float> Radius, Vector<float> Sin, Vector<float> Cos) Transform(Vector<uint> radiusBits, Vector<uint> angleBits)
    {
        // u1 = (k + 0.5)·2^-23 with k the top 23 bits: exact in float32, in (0, 1), so ln u1 is finite.
        var u1 = (Vector.ConvertToSingle(Vector.AsVectorInt32(radiusBits >> 9)) + new Vector<float>(0.5f)) * new Vector<float>(1f / 8388608f);
        var radius = Vector.SquareRoot(new Vector<float>(-2f) * Log(u1));

        // θ = 2π·u2 split exactly: quadrant from the top 2 bits, φ in (0, π/2) from the next 23.
        var quadrant = angleBits >> 30;
        var fraction = (Vector.ConvertToSingle(Vector.AsVectorInt32((angleBits >> 7) & new Vector<uint>(0x7FFFFF))) + new Vector<float>(0.5f))
            * new Vector<float>(1f / 8388608f);
        var phi = fraction * new Vector<float>(MathF.PI / 2);
        var phi2 = phi * phi;

        // Taylor series on (0, π/2): truncation below 1e-9, under float32 rounding.
        var sin = phi * (One + phi2 * (new Vector<float>(-1f / 6) + phi2 * (new Vector<float>(1f / 120) + phi2 * (new Vector<float>(-1f / 5040)
            + phi2 * (new Vector<float>(1f / 362880) + phi2 * (new Vector<float>(-1f / 39916800) + phi2 * new Vector<float>(1f / 6227020800)))))));
        var cos = One + phi2 * (new Vector<float>(-1f / 2) + phi2 * (new Vector<float>(1f / 24) + phi2 * (new Vector<float>(-1f / 720)
            + phi2 * (new Vector<float>(1f / 40320) + phi2 * (new Vector<float>(-1f / 3628800) + phi2 * (new Vector<float>(1f / 479001600)
            + phi2 * new Vector<float>(-1f / 87178291200)))))));

        // Rotate by quadrant·π/2: odd quadrants swap sin and cos; signs by quadrant.
        var swap = Vector.Equals(quadrant & Vector<uint>.One, Vector<uint>.One);
        var sinOut = Vector.ConditionalSelect(Vector.AsVectorInt32(swap), cos, sin);
        var cosOut = Vector.ConditionalSelect(Vector.AsVectorInt32(swap), sin, cos);
        var sinSign = (quadrant >> 1) << 31; // quadrants 2, 3
        var cosSign = ((quadrant ^ (quadrant >> 1)) & Vector<uint>.One) << 31; // quadrants 1, 2
        sinOut = Vector.AsVectorSingle(Vector.AsVectorUInt32(sinOut) ^ sinSign);
        cosOut = Vector.AsVectorSingle(Vector.AsVectorUInt32(cosOut) ^ cosSign);
        return (radius, sinOut, cosOut);
    }

    private static Vector<float> One => Vector<float>.One;

    /// <summary>
    /// ln u for normal positive u: u = 2^e·m with m in [√½, √2), ln m = 2·atanh(s), s = (m−1)/(m+1)
    /// (series to s^11; |s| ≤ 0.172 so truncation is below 1e-9).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot SIMD loop: skip the slow tier-0 code of the first calls
    private static Vector<float> Log(Vector<float> u)
    {
        var bits = Vector.AsVectorInt32(u);
        var exponent = (bits >> 23) - new Vector<int>(127);
        var mantissa = Vector.AsVectorSingle((bits & new Vector<int>(0x7FFFFF)) | new Vector<int>(0x3F800000));
        var large = Vector.GreaterThan(mantissa, new Vector<float>(1.41421356f));
        mantissa = Vector.ConditionalSelect(large, mantissa * new Vector<float>(0.5f), mantissa);
        exponent -= large; // a true lane is −1, so this adds one
        var f = mantissa - One;
        var s = f / (new Vector<float>(2f) + f);
        var s2 = s * s;
        var series = One + s2 * (new Vector<float>(1f / 3) + s2 * (new Vector<float>(1f / 5) + s2 * (new Vector<float>(1f / 7)
            + s2 * (new Vector<float>(1f / 9) + s2 * new Vector<float>(1f / 11)))));
        return Vector.ConvertToSingle(exponent) * new Vector<float>(0.693147181f) + new Vector<float>(2f) * s * series;
    }

    /// <summary>Philox4x32-10 on Vector&lt;uint&gt;.Count counters at once; lane by lane equal to the scalar one.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot SIMD loop: skip the slow tier-0 code of the first calls
    internal static void Philox(
        Vector<uint> c0, Vector<uint> c1, Vector<uint> c2, Vector<uint> c3, uint key0, uint key1,
        out Vector<uint> w0, out Vector<uint> w1, out Vector<uint> w2, out Vector<uint> w3)
    {
        var m0 = new Vector<ulong>(M0);
        var m1 = new Vector<ulong>(M1);
        for (var round = 0; round < 10; round++)
        {
            // 32×32→64-bit products, split into high and low words.
            Vector.Widen(c0, out var c0Low, out var c0High);
            Vector.Widen(c2, out var c2Low, out var c2High);
            var p0Low = c0Low * m0;
            var p0High = c0High * m0;
            var p1Low = c2Low * m1;
            var p1High = c2High * m1;
            var hi0 = Vector.Narrow(p0Low >> 32, p0High >> 32);
            var lo0 = Vector.Narrow(p0Low, p0High);
            var hi1 = Vector.Narrow(p1Low >> 32, p1High >> 32);
            var lo1 = Vector.Narrow(p1Low, p1High);
            (c0, c1, c2, c3) = (hi1 ^ c1 ^ new Vector<uint>(key0), lo1, hi0 ^ c3 ^ new Vector<uint>(key1), lo0);
            key0 = unchecked(key0 + W0);
            key1 = unchecked(key1 + W1);
        }

        (w0, w1, w2, w3) = (c0, c1, c2, c3);
    }

    /// <summary>Scalar Philox4x32-10: the reference the vector version is tested against.</summary>
    internal static void Philox(uint c0, uint c1, uint c2, uint c3, uint key0, uint key1, Span<uint> output)
    {
        for (var round = 0; round < 10; round++)
        {
            var p0 = (ulong)M0 * c0;
            var p1 = (ulong)M1 * c2;
            (c0, c1, c2, c3) = ((uint)(p1 >> 32) ^ c1 ^ key0, (uint)p1, (uint)(p0 >> 32) ^ c3 ^ key1, (uint)p0);
            key0 = unchecked(key0 + W0);
            key1 = unchecked(key1 + W1);
        }

        output[0] = c0;
        output[1] = c1;
        output[2] = c2;
        output[3] = c3;
    }
}
