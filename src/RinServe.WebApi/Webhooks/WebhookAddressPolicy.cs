using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Options;

namespace RinServe.WebApi.Webhooks;

/// <summary>
/// Where a webhook may go (SSRF): an absolute http or https URL without user info, whose host resolves to public
/// addresses only, unless <c>Webhooks:AllowedHosts</c> lists it. Checked when a request names the URL (a 400 when
/// refused) and again at every connection (<see cref="WebhookSender"/>), against the address actually dialled, so a
/// name that resolves elsewhere later (DNS rebinding) or a redirect (never followed) cannot reach a private address.
/// </summary>
public sealed class WebhookAddressPolicy(IOptions<WebhooksOptions> options)
{
    public const int MaxLength = 2048;

    private readonly HashSet<string> _allowed = new(options.Value.AllowedHosts.Select(h => h.Trim().ToLowerInvariant()), StringComparer.Ordinal);

    /// <summary>The URL's shape: null and the parsed URL when fine, else what is wrong.</summary>
    public static string? CheckShape(string text, out Uri? url)
    {
        url = null;
        if (text.Length > MaxLength)
        {
            return $"webhook must be a URL of at most {MaxLength} characters";
        }
        if (!Uri.TryCreate(text, UriKind.Absolute, out var parsed) || parsed.Scheme is not ("http" or "https"))
        {
            return "webhook must be an absolute http or https URL";
        }
        if (parsed.UserInfo.Length > 0)
        {
            return "webhook must not hold user info (user:password@); a receiver checks the signature instead";
        }
        if (parsed.Host.Length == 0)
        {
            return "webhook must name a host";
        }
        url = parsed;
        return null;
    }

    /// <summary>Whether <c>Webhooks:AllowedHosts</c> lets this host and port through, private or not.</summary>
    public bool IsAllowed(string host, int port)
    {
        host = host.ToLowerInvariant();
        var bracketed = host.Contains(':', StringComparison.Ordinal) && !host.StartsWith('[') ? $"[{host}]" : host;
        return _allowed.Contains(host) || _allowed.Contains(bracketed) || _allowed.Contains($"{bracketed}:{port}");
    }

    /// <summary>Null when the URL may be called now (its host allowed, or all its addresses public), else why not.</summary>
    public async Task<string?> CheckAsync(Uri url, CancellationToken ct)
    {
        if (IsAllowed(url.IdnHost, url.Port))
        {
            return null;
        }
        IPAddress[] addresses;
        try
        {
            addresses = await ResolveAsync(url.IdnHost, ct).ConfigureAwait(false);
        }
        catch (SocketException)
        {
            return $"webhook host '{url.Host}' does not resolve";
        }
        if (addresses.Length == 0)
        {
            return $"webhook host '{url.Host}' does not resolve";
        }
        return addresses.FirstOrDefault(a => !IsPublic(a)) is { } inner
            ? $"webhook host '{url.Host}' is (or resolves to) {inner}, a private, loopback, link-local or reserved address; " +
              "Webhooks:AllowedHosts must list it to allow it"
            : null;
    }

    /// <summary>An IP literal as it is, else the host's addresses from DNS.</summary>
    public static Task<IPAddress[]> ResolveAsync(string host, CancellationToken ct) =>
        IPAddress.TryParse(host.Trim('[', ']'), out var literal) ? Task.FromResult<IPAddress[]>([literal]) : Dns.GetHostAddressesAsync(host, ct);

    /// <summary>
    /// True for globally routable unicast addresses: false for loopback, private (RFC 1918, unique local), shared
    /// (100.64/10), link-local (169.254/16 with the cloud metadata address, fe80::/10), multicast, unspecified,
    /// documentation, benchmarking and reserved ranges, and for IPv6 forms that carry such an IPv4 address (mapped,
    /// compatible, NAT64, 6to4) or tunnel to one unseen (Teredo).
    /// </summary>
    public static bool IsPublic(IPAddress address)
    {
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            return IsPublicV4(address.GetAddressBytes());
        }
        if (address.AddressFamily != AddressFamily.InterNetworkV6)
        {
            return false;
        }
        var b = address.GetAddressBytes();
        if (address.IsIPv4MappedToIPv6)
        {
            return IsPublicV4(b[12..]);
        }
        if (b[..12].All(x => x == 0))
        {
            return b[12] != 0 && IsPublicV4(b[12..]); // ::, ::1 and IPv4-compatible ::a.b.c.d
        }
        if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b)
        {
            return IsPublicV4(b[12..]); // NAT64 64:ff9b::/96
        }
        if (b[0] == 0x20 && b[1] == 0x02)
        {
            return IsPublicV4(b[2..6]); // 6to4 2002::/16
        }
        return !((b[0] & 0xfe) == 0xfc // unique local fc00::/7
            || (b[0] == 0xfe && (b[1] & 0xc0) is 0x80 or 0xc0) // link-local fe80::/10, site-local fec0::/10
            || b[0] == 0xff // multicast
            || (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) // documentation 2001:db8::/32
            || (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x00 && b[3] == 0x00) // Teredo 2001::/32
            || (b[0] == 0x01 && b[1..8].All(x => x == 0))); // discard 100::/64
    }

    private static bool IsPublicV4(ReadOnlySpan<byte> a) => !(
        a[0] is 0 or 10 or 127 || a[0] >= 224 // this network, private, loopback, multicast and reserved (240/4, broadcast)
        || (a[0] == 100 && (a[1] & 0xc0) == 64) // shared address space 100.64/10
        || (a[0] == 169 && a[1] == 254) // link-local, cloud metadata 169.254.169.254
        || (a[0] == 172 && (a[1] & 0xf0) == 16) // private 172.16/12
        || (a[0] == 192 && a[1] == 168) // private
        || (a[0] == 192 && a[1] == 0 && a[2] is 0 or 2) // IETF protocol assignments, documentation
        || (a[0] == 192 && a[1] == 88 && a[2] == 99) // 6to4 relay anycast
        || (a[0] == 198 && (a[1] & 0xfe) == 18) // benchmarking 198.18/15
        || (a[0] == 198 && a[1] == 51 && a[2] == 100) // documentation
        || (a[0] == 203 && a[1] == 0 && a[2] == 113)); // documentation
}
