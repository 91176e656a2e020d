using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using RinServe.WebApi.Hosting;

namespace RinServe.WebApi.Security;

/// <summary>
/// Optional API keys: the configured SHA-256 hashes are compared in constant time with the hash of the
/// presented key. The matching hash is the caller's identity: jobs belong to it.
/// </summary>
public sealed class ApiKeys(IOptions<AuthOptions> options)
{
    private const string OwnerItem = "rinserve.owner";
    private readonly byte[][] _hashes = [.. options.Value.ApiKeys.Select(Convert.FromHexString)];

    public bool Enabled => _hashes.Length > 0;

    /// <summary>The key sent with the request (X-Api-Key, or Authorization: Bearer), or null.</summary>
    public static string? Presented(HttpRequest request)
    {
        if (request.Headers.TryGetValue("X-Api-Key", out var key) && !string.IsNullOrEmpty(key))
        {
            return key.ToString();
        }
        var authorization = request.Headers.Authorization.ToString();
        return authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? authorization["Bearer ".Length..].Trim() : null;
    }

    /// <summary>The owner id of a valid key, or null.</summary>
    public string? Match(string key)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(key));
        string? owner = null;
        // Compare against every hash, without stopping early, so timing says nothing about which matched.
        foreach (var candidate in _hashes)
        {
            if (CryptographicOperations.FixedTimeEquals(hash, candidate))
            {
                owner = Convert.ToHexStringLower(candidate);
            }
        }
        return owner;
    }

    /// <summary>The owner of the current request, set by <see cref="ApiKeyFilter"/>; null when keys are off.</summary>
    public static string? Owner(HttpContext context) => context.Items.TryGetValue(OwnerItem, out var o) ? o as string : null;

    internal static void SetOwner(HttpContext context, string owner) => context.Items[OwnerItem] = owner;
}

/// <summary>Answers 401 without a key and 403 with a wrong one, when keys are configured.</summary>
public sealed class ApiKeyFilter(ApiKeys keys) : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        if (!keys.Enabled)
        {
            return await next(context);
        }
        var http = context.HttpContext;
        var presented = ApiKeys.Presented(http.Request);
        if (string.IsNullOrEmpty(presented))
        {
            http.Response.Headers.WWWAuthenticate = "Bearer";
            return Problems.Problem(StatusCodes.Status401Unauthorized, "API key required",
                "Send your API key in the X-Api-Key header or as Authorization: Bearer <key>.", "X-Api-Key");
        }
        if (keys.Match(presented) is not { } owner)
        {
            return Problems.Problem(StatusCodes.Status403Forbidden, "API key not accepted", "The API key is not valid for this service.", "X-Api-Key");
        }
        ApiKeys.SetOwner(http, owner);
        return await next(context);
    }
}
