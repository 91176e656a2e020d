using System.Security.Cryptography;
using System.Text;

namespace RinServe.WebApi.Webhooks;

/// <summary>
/// Standard Webhooks signatures (https://www.standardwebhooks.com): <c>webhook-signature: v1,</c> + base64 of
/// HMAC-SHA256 over <c>{webhook-id}.{webhook-timestamp}.{body}</c>, keyed with the secret's bytes (after <c>whsec_</c>).
/// </summary>
public static class WebhookSigner
{
    public const string Prefix = "whsec_";

    /// <summary>The key bytes of a <c>whsec_</c> secret, or null when it is not one.</summary>
    public static byte[]? KeyOf(string secret)
    {
        if (!secret.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return null;
        }
        try
        {
            var key = Convert.FromBase64String(secret[Prefix.Length..]);
            return key.Length is >= 24 and <= 64 ? key : null;
        }
        catch (FormatException)
        {
            return null;
        }
    }

    /// <summary>The <c>webhook-signature</c> value of one attempt.</summary>
    public static string Sign(byte[] key, string id, long timestamp, ReadOnlySpan<byte> body)
    {
        using var hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, key);
        hmac.AppendData(Encoding.UTF8.GetBytes($"{id}.{timestamp}."));
        hmac.AppendData(body);
        return "v1," + Convert.ToBase64String(hmac.GetHashAndReset());
    }

    /// <summary>What a receiver does: true when one of the header's space-separated signatures is ours (constant time).</summary>
    public static bool Verify(byte[] key, string id, long timestamp, ReadOnlySpan<byte> body, string signatureHeader)
    {
        var expected = Encoding.ASCII.GetBytes(Sign(key, id, timestamp, body));
        return signatureHeader.Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Any(candidate => CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(candidate), expected));
    }
}
