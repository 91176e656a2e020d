using System.Numerics.Tensors;

namespace RinServe.Diffusion;

/// <summary>The sampler's last x̂0 turned into pixels (contract, "Sampling").</summary>
internal static class ImageOutput
{
    /// <summary>image = clip(x̂0 / b / 2 + 0.5, 0, 1); in place is fine.</summary>
    public static void ToUnitRange(ReadOnlySpan<float> x0, float inputScale, Span<float> destination)
    {
        TensorPrimitives.Divide(x0, inputScale, destination);
        TensorPrimitives.Multiply(destination, 0.5f, destination);
        TensorPrimitives.Add(destination, 0.5f, destination);
        TensorPrimitives.Clamp(destination, 0f, 1f, destination);
    }

    /// <summary>NCHW values in [0, 1] to 8-bit HWC pixels: ×255, round half to even. Overwrites <paramref name="unit"/>.</summary>
    public static GeneratedImage ToImage(Span<float> unit, ModelSpec spec) => ToImage(unit, spec.Resolution, spec.Channels);

    /// <summary>As above, for a square image of <paramref name="resolution"/> pixels a side.</summary>
    public static GeneratedImage ToImage(Span<float> unit, int resolution, int channels)
    {
        var plane = resolution * resolution;
        var pixels = new byte[plane * channels];
        TensorPrimitives.Multiply(unit, 255f, unit);
        TensorPrimitives.Round(unit, MidpointRounding.ToEven, unit);
        if (channels == 1)
        {
            TensorPrimitives.ConvertTruncating<float, byte>(unit, pixels); // whole numbers in 0..255: exact
        }
        else
        {
            for (var c = 0; c < channels; c++)
            {
                var source = unit.Slice(c * plane, plane);
                for (var k = 0; k < plane; k++)
                {
                    pixels[k * channels + c] = (byte)source[k];
                }
            }
        }

        return new GeneratedImage(resolution, resolution, channels, pixels);
    }
}
