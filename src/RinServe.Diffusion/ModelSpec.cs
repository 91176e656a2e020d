using System.Globalization;

namespace RinServe.Diffusion;

/// <summary>What the network predicts (MODEL-CONTRACT.md, <c>rin.prediction</c>).</summary>
public enum Prediction { Eps, X, V }

/// <summary>How <see cref="ModelSpec.FindClass"/> read a class given as text.</summary>
public enum ClassLookup
{
    /// <summary>A class id in range, or a class name of the model.</summary>
    Found,
    /// <summary>A number, but not a class id of the model (negative, or num_classes or more).</summary>
    OutOfRange,
    /// <summary>Neither a number nor a class name of the model.</summary>
    Unknown,
}

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

    /// <summary>
    /// The one reading of "class id or class name" (requests and the CLI): an integer is an id, 0..NumClasses-1;
    /// anything else is a class name, compared case-insensitively.
    /// </summary>
    public ClassLookup FindClass(string text, out int classId)
    {
        classId = -1;
        if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var number))
        {
            if (number < 0 || number >= NumClasses)
            {
                return ClassLookup.OutOfRange;
            }
            classId = (int)number;
            return ClassLookup.Found;
        }
        for (var i = 0; i < ClassNames.Count; i++)
        {
            if (string.Equals(ClassNames[i], text, StringComparison.OrdinalIgnoreCase))
            {
                classId = i;
                return ClassLookup.Found;
            }
        }
        return ClassLookup.Unknown;
    }
}
