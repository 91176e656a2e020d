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

/// <summary>
/// The lent arrays of one call: exactly <c>batch</c> rows each (layouts as in <see cref="IDenoiser.Denoise"/>). Memory, not
/// spans, so that the sampler may fill and read image-sized rows on several threads at once.
/// </summary>
public readonly struct DenoiserBuffers(
    Memory<float> x, Memory<float> gamma, Memory<long> classIds, Memory<float> latentsIn, ReadOnlyMemory<float> pred, ReadOnlyMemory<float> latentsOut)
{
    public Memory<float> X { get; } = x;

    public Memory<float> Gamma { get; } = gamma;

    public Memory<long> ClassIds { get; } = classIds;

    public Memory<float> LatentsIn { get; } = latentsIn;

    public ReadOnlyMemory<float> Pred { get; } = pred;

    public ReadOnlyMemory<float> LatentsOut { get; } = latentsOut;
}
