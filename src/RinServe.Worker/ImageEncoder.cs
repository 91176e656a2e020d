using System.Globalization;
using RinServe.Diffusion;
using RinServe.Jobs;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.PixelFormats;

namespace RinServe.Worker;

/// <summary>
/// The one image encoder: 8-bit HWC pixels to PNG (with the generation parameters in tEXt chunks),
/// JPEG or WebP. Only encodes our own pixels; never decodes user input.
/// </summary>
public static class ImageEncoder
{
    /// <summary>The JPEG quality of format=jpeg answers (0..100).</summary>
    private const int JpegQuality = 92;

    /// <summary>
    /// zlib level 1, not ImageSharp's default 6: a 1024 px image encodes about 6x faster for about a third more bytes
    /// (bench/RESULTS.md, "PNG encoding"). The encode runs on the cores that sample, so its time is other requests' latency.
    /// </summary>
    public const PngCompressionLevel PngLevel = PngCompressionLevel.Level1;

    public static string ContentType(string format) => format switch
    {
        "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        _ => "image/png",
    };

    public static byte[] Encode(GeneratedImage pixels, string format, JobSpec spec, int index, IReadOnlyList<string> classNames)
    {
        using var image = Load(pixels);
        IImageEncoder encoder = format switch
        {
            "jpeg" => new JpegEncoder { Quality = JpegQuality },
            "webp" => new WebpEncoder { FileFormat = WebpFileFormatType.Lossless },
            _ => Png(pixels),
        };
        if (format == "png")
        {
            var text = image.Metadata.GetPngMetadata().TextData;
            var className = spec.ClassId < classNames.Count ? classNames[(int)spec.ClassId] : "";
            foreach (var (key, value) in new (string, string)[]
            {
                ("seed", unchecked(spec.Seed + (ulong)index).ToString(CultureInfo.InvariantCulture)),
                ("model", spec.Model),
                ("steps", spec.Steps.ToString(CultureInfo.InvariantCulture)),
                ("sampler", spec.Sampler),
                ("schedule", spec.Schedule),
                ("guidance", spec.Guidance.ToString(CultureInfo.InvariantCulture)),
                ("class", $"{spec.ClassId} {className}".Trim()),
                ("Software", "RinServe"),
            })
            {
                text.Add(new PngTextData(key, value, string.Empty, string.Empty));
            }
        }
        using var output = new MemoryStream();
        image.Save(output, encoder);
        return output.ToArray();
    }

    /// <summary>A live preview: a plain PNG, no text chunks (it is not a result).</summary>
    public static byte[] EncodePreview(GeneratedImage pixels)
    {
        using var image = Load(pixels);
        using var output = new MemoryStream();
        image.Save(output, Png(pixels));
        return output.ToArray();
    }

    /// <summary>The PNG encoder of every answer: the image's own channels, <see cref="PngLevel"/>.</summary>
    public static PngEncoder Png(GeneratedImage pixels, PngCompressionLevel level = PngLevel) => new()
    {
        ColorType = pixels.Channels == 1 ? PngColorType.Grayscale : PngColorType.Rgb,
        CompressionLevel = level,
    };

    private static Image Load(GeneratedImage pixels) => pixels.Channels switch
    {
        1 => Image.LoadPixelData<L8>(pixels.Pixels, pixels.Width, pixels.Height),
        3 => Image.LoadPixelData<Rgb24>(pixels.Pixels, pixels.Width, pixels.Height),
        _ => throw new NotSupportedException($"images with {pixels.Channels} channels cannot be encoded"),
    };
}
