using System.Buffers;
using System.Globalization;

namespace RinServe.Diffusion;

/// <summary>What the network predicts (MODEL-CONTRACT.md, <c>rin.prediction</c>).</summary>
public enum Prediction { Eps, X, V }

/// <summary>How <see cref="ModelSpec.FindClass"/> read a class given as text.</summary>
public enum ClassLookup
{
    /// <summary>A class id in range, a class name of the model, or the character or code point of one.</summary>
    Found,
    /// <summary>A number, but not a class id of the model (negative, or num_classes or more).</summary>
    OutOfRange,
    /// <summary>Neither a number nor a class of the model by name, character or code point.</summary>
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
/// <param name="Family">
/// The family the model belongs to (<c>rin.family</c>); null: <paramref name="Name"/> up to its first '-' ("glyph-768": "glyph").
/// </param>
/// <param name="DefaultSampler">The sampler its trainer's judge chose (<c>rin.default_sampler</c>); null: <see cref="SamplingDefaults.Sampler"/>.</param>
/// <param name="DefaultSteps">The steps its trainer's judge chose with that sampler (<c>rin.default_steps</c>); null: the service's default.</param>
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
    float DefaultGuidance = 0,
    string? Family = null,
    string? DefaultSampler = null,
    int? DefaultSteps = null)
{
    /// <summary>The model's family: <c>rin.family</c>, else <see cref="Name"/> up to its first '-'. <c>model=</c> accepts it with <c>res</c>.</summary>
    public string Family { get; init; } = Family ?? FamilyOf(Name);

    /// <summary>The family a model without <c>rin.family</c> belongs to: its name up to the first '-' (all of it without one).</summary>
    public static string FamilyOf(string name) => name.IndexOf('-', StringComparison.Ordinal) is > 0 and var dash ? name[..dash] : name;

    /// <summary>
    /// Where along t its guidance applies, as its trainer's judge chose (<c>rin.guidance_interval</c>), for requests that
    /// name none; <see cref="GuidanceInterval.Whole"/> when the file has no such key.
    /// </summary>
    public GuidanceInterval GuidanceInterval { get; init; } = GuidanceInterval.Whole;

    public int PixelsPerImage => Channels * Resolution * Resolution;
    public int LatentsPerImage => LatentCount * LatentDim;
    public bool SupportsGuidance => NullClass is not null;

    /// <summary>
    /// The one reading of "class id or class name" (requests and the CLI). An integer is an id, 0..NumClasses-1 (so "1" is
    /// class 1; the character 1 is "U+0031"). Anything else, the first rule that matches: a full class name, exactly; a full
    /// class name, case-insensitively ("sneaker"); for classes named "&lt;text&gt; (U+XXXX)", the text exactly, case-sensitive
    /// ("a" is not "A"), or the code point "U+XXXX", case-insensitively.
    /// </summary>
    public ClassLookup FindClass(string text, out int classId)
    {
        ArgumentNullException.ThrowIfNull(text);
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
        classId = IndexOf(name => string.Equals(name, text, StringComparison.Ordinal));
        if (classId < 0)
        {
            classId = IndexOf(name => string.Equals(name, text, StringComparison.OrdinalIgnoreCase));
        }
        if (classId < 0)
        {
            classId = IndexOf(name => CodePointName.TrySplit(name, out var character, out _) && string.Equals(character, text, StringComparison.Ordinal));
        }
        if (classId < 0)
        {
            classId = IndexOf(name => CodePointName.TrySplit(name, out _, out var codePoint) && string.Equals(codePoint, text, StringComparison.OrdinalIgnoreCase));
        }
        return classId >= 0 ? ClassLookup.Found : ClassLookup.Unknown;
    }

    /// <summary>Models with at most this many classes have them all named in errors; larger ones, an example.</summary>
    public const int MaxListedClasses = 12;

    /// <summary>
    /// What <see cref="FindClass"/> accepts, in a few words whatever the number of classes (errors of the API and the CLI):
    /// every name up to <see cref="MaxListedClasses"/> classes, else the id range and one name, with its character and code
    /// point when the classes are named so.
    /// </summary>
    public string DescribeClasses()
    {
        var ids = $"an id from 0 to {NumClasses - 1}";
        if (NumClasses <= MaxListedClasses)
        {
            return $"{ids} or a name: {string.Join(", ", ClassNames)}";
        }
        var characterNamed = ClassNames.Where(n => CodePointName.TrySplit(n, out _, out _)).ToArray();
        if (characterNamed.Length == 0)
        {
            return $"{ids} or a class name such as '{UserText.Shorten(ClassNames[0])}'";
        }
        var example = characterNamed.FirstOrDefault(n => char.IsLetter(n[0])) ?? characterNamed[0];
        return $"{ids}, a class name such as '{UserText.Shorten(example)}', its character, or U+XXXX";
    }

    private int IndexOf(Func<string, bool> match)
    {
        for (var i = 0; i < ClassNames.Count; i++)
        {
            if (match(ClassNames[i]))
            {
                return i;
            }
        }
        return -1;
    }
}

/// <summary>Class names of the form "&lt;text&gt; (U+XXXX)": a character (or short text) and its Unicode code point.</summary>
public static class CodePointName
{
    private const string Opening = " (U+";
    private static readonly SearchValues<char> UpperHexDigits = SearchValues.Create("0123456789ABCDEF");

    /// <summary>
    /// Splits "ĳ (U+0133)" into "ĳ" and "U+0133"; false for a name of another form. The code point has 4 to 6 upper-case
    /// hex digits, as Unicode writes them.
    /// </summary>
    public static bool TrySplit(string name, out string text, out string codePoint)
    {
        ArgumentNullException.ThrowIfNull(name);
        (text, codePoint) = (string.Empty, string.Empty);
        var at = name.LastIndexOf(Opening, StringComparison.Ordinal);
        if (at <= 0 || !name.EndsWith(')'))
        {
            return false;
        }
        var digits = name.AsSpan(at + Opening.Length, name.Length - at - Opening.Length - 1);
        if (digits.Length is < 4 or > 6 || digits.ContainsAnyExcept(UpperHexDigits))
        {
            return false;
        }
        (text, codePoint) = (name[..at], name[(at + 2)..^1]);
        return true;
    }
}
