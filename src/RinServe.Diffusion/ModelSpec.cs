namespace RinServe.Diffusion;

/// <summary>What the network predicts (MODEL-CONTRACT.md, <c>rin.prediction</c>).</summary>
public enum Prediction { Eps, X, V }

/// <summary>
/// Everything the sampler needs to know about one trained RIN denoiser: the metadata of
/// MODEL-CONTRACT.md, already validated by whoever loaded the file.
/// </summary>
/// <param name="DefaultGuidance">
/// The classifier-free guidance weight its trainer chose (<c>rin.default_guidance</c>), for requests that name none;
/// 0 (unguided) when the file has no such key.
/// </param>
public sealed record ModelSpec(
    string Name,
    int Resolution,
    int Channels,
    int NumClasses,
    IReadOnlyList<string> ClassNames,
    int? NullClass,
    Prediction Prediction,
    float InputScale,
    bool NormalizeInput,
    int LatentCount,
    int LatentDim,
    float DefaultGuidance = 0)
{
    public int PixelsPerImage => Channels * Resolution * Resolution;
    public int LatentsPerImage => LatentCount * LatentDim;
    public bool SupportsGuidance => NullClass is not null;
}
