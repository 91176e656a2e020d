namespace RinServe.Diffusion;

/// <summary>
/// Standard normal noise as a pure function of (seed, step, element), so an image depends on its
/// own seed alone: not on the other requests in its batch, its position there, or the machine.
/// </summary>
public interface INoiseSource
{
    /// <summary>The step value that selects the initial x ~ N(0, I) rather than a DDPM step's z.</summary>
    const int InitialStep = -1;

    /// <summary>Fills <paramref name="destination"/> (one image, C·H·W values) with N(0, 1) samples.</summary>
    void Fill(ulong seed, int step, Span<float> destination);
}

/// <summary>
/// Counter-based Gaussian noise: Philox4x32-10 (Salmon et al. 2011, "Parallel random numbers: as easy
/// as 1, 2, 3") keyed by the seed, counter (element block, step), then Box–Muller on pairs of 32-bit
/// uniforms. Stateless and thread-safe.
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
    private const uint StreamTag = 0x52494E31; // "RIN1"

    private const double TwoPi = 2 * Math.PI;
    private const double InvTwoPow32 = 1.0 / 4294967296.0;

    public void Fill(ulong seed, int step, Span<float> destination)
    {
        var key0 = (uint)seed;
        var key1 = (uint)(seed >> 32);
        var stepCounter = unchecked((uint)(step + 1)); // InitialStep (-1) maps to 0.
        Span<uint> block = stackalloc uint[4];
        for (var start = 0; start < destination.Length; start += 4)
        {
            var blockIndex = (ulong)start / 4;
            Philox((uint)blockIndex, (uint)(blockIndex >> 32), stepCounter, StreamTag, key0, key1, block);
            var count = Math.Min(4, destination.Length - start);
            BoxMuller(block[0], block[1], out var z0, out var z1);
            destination[start] = z0;
            if (count > 1)
            {
                destination[start + 1] = z1;
            }

            if (count > 2)
            {
                BoxMuller(block[2], block[3], out var z2, out var z3);
                destination[start + 2] = z2;
                if (count > 3)
                {
                    destination[start + 3] = z3;
                }
            }
        }
    }

    /// <summary>Box–Muller (1958): two uniforms in (0, 1) give two independent N(0, 1) samples.</summary>
    private static void BoxMuller(uint a, uint b, out float z0, out float z1)
    {
        var u1 = (a + 0.5) * InvTwoPow32; // never 0, so the log is finite
        var u2 = (b + 0.5) * InvTwoPow32;
        var radius = Math.Sqrt(-2.0 * Math.Log(u1));
        var (sin, cos) = Math.SinCos(TwoPi * u2);
        z0 = (float)(radius * cos);
        z1 = (float)(radius * sin);
    }

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
