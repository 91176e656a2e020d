using RinServe.Diffusion;

namespace RinServe.Diffusion.Tests;

/// <summary>
/// A deterministic stand-in for the RIN network: every output of an example depends on that example's
/// inputs only (as a real network's do), and it records what it was called with.
/// </summary>
internal sealed class ToyDenoiser(ModelSpec spec) : IDenoiser
{
    public ModelSpec Spec { get; } = spec;

    public List<int> Batches { get; } = [];

    public List<long[]> ClassIds { get; } = [];

    public List<float[]> Gammas { get; } = [];

    public List<float[]> Inputs { get; } = [];

    public List<float[]> LatentsIn { get; } = [];

    public List<float[]> LatentsOut { get; } = [];

    public bool Record { get; init; } = true;

    public static ModelSpec MakeSpec(
        Prediction prediction = Prediction.Eps, int? nullClass = 3, bool normalize = true, int channels = 1, int resolution = 4) =>
        new(
            "toy", resolution, channels, 3, ["a", "b", "c"], nullClass, prediction, 0.5f, normalize, LatentCount: 2, LatentDim: 3);

    public void Denoise(
        int batch,
        ReadOnlySpan<float> x,
        ReadOnlySpan<float> gamma,
        ReadOnlySpan<long> classIds,
        ReadOnlySpan<float> latentsIn,
        Span<float> pred,
        Span<float> latentsOut)
    {
        var perImage = Spec.PixelsPerImage;
        var perLatents = Spec.LatentsPerImage;
        // Plain checks, not Assert: asserts allocate and would hide the sampler's own allocations.
        if (x.Length != batch * perImage || gamma.Length != batch || classIds.Length != batch
            || latentsIn.Length != batch * perLatents || pred.Length != batch * perImage || latentsOut.Length != batch * perLatents)
        {
            throw new InvalidOperationException("span lengths do not match the batch");
        }
        for (var b = 0; b < batch; b++)
        {
            var xb = x.Slice(b * perImage, perImage);
            var mean = 0f;
            foreach (var v in xb)
            {
                mean += v;
            }

            mean /= perImage;
            var cls = classIds[b] + 1;
            for (var k = 0; k < perImage; k++)
            {
                pred[b * perImage + k] = 0.8f * xb[k] + 0.1f * cls * gamma[b] + 0.05f * latentsIn[b * perLatents + k % perLatents]
                    - 0.02f * k / perImage;
            }

            for (var j = 0; j < perLatents; j++)
            {
                latentsOut[b * perLatents + j] = 0.5f * latentsIn[b * perLatents + j] + mean * (j + 1) * 0.1f + gamma[b] + 0.01f * cls;
            }
        }

        if (Record)
        {
            Batches.Add(batch);
            ClassIds.Add(classIds.ToArray());
            Gammas.Add(gamma.ToArray());
            Inputs.Add(x.ToArray());
            LatentsIn.Add(latentsIn.ToArray());
            LatentsOut.Add(latentsOut.ToArray());
        }
    }
}
