using System.Numerics.Tensors;

namespace RinServe.Diffusion;

/// <summary>
/// Receives low-resolution previews of x̂0, the sampler's current estimate of the final image, during a run.
/// The sampler asks before each image's update: x̂0 of an image is only written and previewed when wanted,
/// so a run without a sink, or whose sink wants nothing, does no extra work.
/// </summary>
public interface IPreviewSink
{
    /// <summary>Whether image <paramref name="image"/> of the batch wants a preview after step <paramref name="step"/> (1..Steps).</summary>
    bool Wants(int step, int image);

    /// <summary>The preview of one image after a step; called on the sampler's thread, so it must be quick.</summary>
    void Take(int step, int image, GeneratedImage preview);
}

/// <summary>Live previews: x̂0 area-averaged to at most <see cref="MaxSide"/> pixels a side, as 8-bit pixels.</summary>
public static class X0Preview
{
    /// <summary>Largest side of a preview in pixels.</summary>
    public const int MaxSide = 64;

    /// <summary>
    /// Averages f × f blocks of one clipped x̂0 ([C, H, W], f = ceil(res / <see cref="MaxSide"/>), a remainder of
    /// fewer than f rows and columns is left out), then maps it to pixels as the final image is.
    /// </summary>
    public static GeneratedImage Downsample(ReadOnlySpan<float> x0, ModelSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var res = spec.Resolution;
        if (x0.Length != spec.PixelsPerImage)
        {
            throw new ArgumentException($"x0 must hold {spec.PixelsPerImage} values", nameof(x0));
        }
        var factor = (res + MaxSide - 1) / MaxSide;
        var side = res / factor;
        var small = new float[spec.Channels * side * side];
        for (var c = 0; c < spec.Channels; c++)
        {
            var plane = x0.Slice(c * res * res, res * res);
            var target = small.AsSpan(c * side * side, side * side);
            for (var y = 0; y < side * factor; y++)
            {
                var row = plane.Slice(y * res, side * factor);
                var sums = target.Slice(y / factor * side, side);
                for (var x = 0; x < row.Length; x++)
                {
                    sums[x / factor] += row[x];
                }
            }
            TensorPrimitives.Multiply(target, 1f / (factor * factor), target);
        }
        ImageOutput.ToUnitRange(small, spec.InputScale, small);
        return ImageOutput.ToImage(small, side, spec.Channels);
    }
}
