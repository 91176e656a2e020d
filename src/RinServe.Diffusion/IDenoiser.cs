namespace RinServe.Diffusion;

/// <summary>
/// One call of the RIN network (MODEL-CONTRACT.md, "Graph inputs and outputs").
/// All spans are flat, row-major, for <paramref name="batch"/> items: x and pred are
/// [B, C, H, W]; gamma is [B]; classIds is [B]; latentsIn and latentsOut are [B, L, D].
/// Implementations may reuse internal buffers between calls but must not keep the spans.
/// </summary>
public interface IDenoiser
{
    ModelSpec Spec { get; }

    void Denoise(
        int batch,
        ReadOnlySpan<float> x,
        ReadOnlySpan<float> gamma,
        ReadOnlySpan<long> classIds,
        ReadOnlySpan<float> latentsIn,
        Span<float> pred,
        Span<float> latentsOut);
}

/// <summary>
/// A denoiser that lends its own input and output arrays (e.g. those an ONNX Runtime session is bound to), so the sampler
/// writes the network's input and reads its prediction in place instead of through two more image-sized copies a step.
/// Use: <see cref="Lend"/> for a call of <c>batch</c> rows, fill its inputs, <see cref="Run"/>, read its outputs; valid
/// until the next <see cref="Lend"/>. One caller at a time, as for <see cref="IDenoiser.Denoise"/>.
/// </summary>
public interface IBufferedDenoiser : IDenoiser
{
    DenoiserBuffers Lend(int batch);

    /// <summary>Runs the network on what the lent inputs hold, for the batch they were lent for.</summary>
    void Run(int batch);
}

/// <summary>The lent arrays of one call: spans of exactly <c>batch</c> rows each (layouts as in <see cref="IDenoiser.Denoise"/>).</summary>
public readonly ref struct DenoiserBuffers(
    Span<float> x, Span<float> gamma, Span<long> classIds, Span<float> latentsIn, ReadOnlySpan<float> pred, ReadOnlySpan<float> latentsOut)
{
    public Span<float> X { get; } = x;

    public Span<float> Gamma { get; } = gamma;

    public Span<long> ClassIds { get; } = classIds;

    public Span<float> LatentsIn { get; } = latentsIn;

    public ReadOnlySpan<float> Pred { get; } = pred;

    public ReadOnlySpan<float> LatentsOut { get; } = latentsOut;
}
