using System.Diagnostics;
using System.Globalization;
using RinServe.Diffusion;
using RinServe.Worker;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;

/// <summary>
/// The PNG encode of an answer at ImageSharp's default zlib level (6) against the service's
/// (<see cref="ImageEncoder.PngLevel"/>): time and bytes per image, the two alternating encode by encode, median of 15.
/// </summary>
internal static class PngTimes
{
    public static void Run(string[] files)
    {
        if (files.Length == 0)
        {
            throw new ArgumentException("--png-times FILE [FILE...]: PNG images to encode (grayscale or RGB)");
        }

        Console.WriteLine("| image | px | level 6 ms | level 6 KiB | service level ms | service level KiB | time ratio (6 / service) | size ratio (service / 6) |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|");
        foreach (var file in files)
        {
            var pixels = Load(file);
            using var image = pixels.Channels == 1
                ? (Image)Image.LoadPixelData<L8>(pixels.Pixels, pixels.Width, pixels.Height)
                : Image.LoadPixelData<Rgb24>(pixels.Pixels, pixels.Width, pixels.Height);
            var levels = new[] { PngCompressionLevel.Level6, ImageEncoder.PngLevel };
            var times = levels.Select(_ => new List<double>()).ToArray();
            var bytes = new long[levels.Length];
            for (var round = 0; round < 16; round++)
            {
                for (var l = 0; l < levels.Length; l++)
                {
                    using var output = new MemoryStream();
                    var start = Stopwatch.GetTimestamp();
                    image.Save(output, ImageEncoder.Png(pixels, levels[l]));
                    var ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                    if (round > 0) // the first round warms the encoder
                    {
                        times[l].Add(ms);
                    }

                    bytes[l] = output.Length;
                }
            }

            var median = times.Select(t => t.Order().ElementAt(t.Count / 2)).ToArray();
            Console.WriteLine(string.Create(
                CultureInfo.InvariantCulture,
                $"| {Path.GetFileName(file)} | {pixels.Width} | {median[0]:F1} | {bytes[0] / 1024.0:F0} | {median[1]:F1} | {bytes[1] / 1024.0:F0} | {median[0] / median[1]:F2} | {(double)bytes[1] / bytes[0]:F2} |"));
        }
    }

    private static GeneratedImage Load(string file)
    {
        using var image = Image.Load(file);
        if (image.PixelType.BitsPerPixel <= 16)
        {
            using var gray = image.CloneAs<L8>();
            var pixels = new byte[gray.Width * gray.Height];
            gray.CopyPixelDataTo(pixels);
            return new GeneratedImage(gray.Width, gray.Height, 1, pixels);
        }

        using var rgb = image.CloneAs<Rgb24>();
        var data = new byte[rgb.Width * rgb.Height * 3];
        rgb.CopyPixelDataTo(data);
        return new GeneratedImage(rgb.Width, rgb.Height, 3, data);
    }
}
