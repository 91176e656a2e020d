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
