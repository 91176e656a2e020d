using System.Buffers.Text;
using System.Security.Cryptography;

namespace RinServe.Jobs;

/// <summary>Job ids: 128 random bits, base64url without padding (22 characters), so they cannot be guessed.</summary>
public static class JobId
{
    public const int Length = 22;

    public static string New()
    {
        Span<byte> bytes = stackalloc byte[16];
        RandomNumberGenerator.Fill(bytes);
        return Base64Url.EncodeToString(bytes);
    }

    /// <summary>True when the text has the shape of a job id; says nothing about whether the job exists.</summary>
    public static bool IsWellFormed(string? text)
    {
        if (text is null || text.Length != Length)
        {
            return false;
        }
        foreach (var c in text)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c == '-' || c == '_'))
            {
                return false;
            }
        }
        return true;
    }
}
