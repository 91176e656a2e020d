using System.Runtime.InteropServices;
using System.Text.Json;
using RinServe.Diffusion;

namespace RinServe.Onnx.Tests;

/// <summary>
/// The trainer's parity fixtures (MODEL-CONTRACT.md, "Parity fixtures"): tests/fixtures/parity/index.json
/// with little-endian float32/int64 .bin files. RINSERVE_FIXTURES overrides the tests/fixtures folder.
/// </summary>
internal static class ParityFixtures
{
    public static string FixturesFolder { get; } = Find();

    public static string ParityFolder => Path.Combine(FixturesFolder, "parity");

    public static string BadModelsFolder => Path.Combine(FixturesFolder, "bad-models");

    public static JsonElement Index { get; } = JsonDocument.Parse(File.ReadAllText(Path.Combine(ParityFolder, "index.json"))).RootElement;

    public static float Tolerance => Index.TryGetProperty("tolerance", out var t) ? t.GetSingle() : 1e-4f;

    public static float[] Floats(JsonElement array) => Read<float>(array, "float32");

    public static long[] Longs(JsonElement array) => Read<long>(array, "int64");

    public static int[] Shape(JsonElement array) => array.GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()).ToArray();

    private static T[] Read<T>(JsonElement array, string dtype)
        where T : struct
    {
        Assert.Equal(dtype, array.GetProperty("dtype").GetString());
        Assert.True(BitConverter.IsLittleEndian);
        var bytes = File.ReadAllBytes(Path.Combine(ParityFolder, array.GetProperty("file").GetString()!));
        var values = MemoryMarshal.Cast<byte, T>(bytes).ToArray();
        Assert.Equal(Shape(array).Aggregate(1, (a, b) => a * b), values.Length);
        return values;
    }

    private static string Find()
    {
        if (Environment.GetEnvironmentVariable("RINSERVE_FIXTURES") is { Length: > 0 } overridden)
        {
            return overridden;
        }

        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "fixtures");
            if (File.Exists(Path.Combine(candidate, "parity", "index.json")))
            {
                return candidate;
            }
        }

        throw new FileNotFoundException("tests/fixtures/parity/index.json not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>The fixture's fixed noise: the request's seed is its index in the fixture batch.</summary>
internal sealed class FixtureNoise(float[] xInit, float[] stepNoise, int perImage, int batch) : INoiseSource
{
    public void Fill(ulong seed, int step, Span<float> destination)
    {
        var b = (int)seed;
        var source = step == INoiseSource.InitialStep
            ? xInit.AsSpan(b * perImage, perImage)
            : stepNoise.AsSpan((step * batch + b) * perImage, perImage);
        source.CopyTo(destination);
    }
}
