using System.Buffers.Binary;
using RinServe.Diffusion;

namespace RinServe.Jobs;

/// <summary>How a generated image is stored in Redis: width, height, channels (int32 LE) then the HWC pixels.</summary>
internal static class ImageBlob
{
    private const int HeaderBytes = 12;

    public static byte[] Encode(GeneratedImage image)
    {
        var blob = new byte[HeaderBytes + image.Pixels.Length];
        BinaryPrimitives.WriteInt32LittleEndian(blob.AsSpan(0), image.Width);
        BinaryPrimitives.WriteInt32LittleEndian(blob.AsSpan(4), image.Height);
        BinaryPrimitives.WriteInt32LittleEndian(blob.AsSpan(8), image.Channels);
        image.Pixels.CopyTo(blob.AsSpan(HeaderBytes));
        return blob;
    }

    public static GeneratedImage? Decode(byte[]? blob)
    {
        if (blob is null || blob.Length < HeaderBytes)
        {
            return null;
        }
        var width = BinaryPrimitives.ReadInt32LittleEndian(blob.AsSpan(0));
        var height = BinaryPrimitives.ReadInt32LittleEndian(blob.AsSpan(4));
        var channels = BinaryPrimitives.ReadInt32LittleEndian(blob.AsSpan(8));
        return new GeneratedImage(width, height, channels, blob[HeaderBytes..]);
    }
}
