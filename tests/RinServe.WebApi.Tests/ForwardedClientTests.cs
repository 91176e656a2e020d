using System.Net;

namespace RinServe.WebApi.Tests;

/// <summary>
/// Who the client is behind a load balancer: X-Forwarded-For counts only from RinServe:TrustedProxies, and only its last
/// entry (the balancer's own). Shown by the per-client rate limit of a real process (2 requests per window here).
/// </summary>
public sealed class ForwardedClientTests
{
    private static async Task<HttpStatusCode> PostAsync(HttpClient client, string? forwardedFor)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/jobs?class=-1"); // a 400: cheap, and counted by the limiter
        if (forwardedFor is not null)
        {
            request.Headers.Add("X-Forwarded-For", forwardedFor);
        }
        return (await client.SendAsync(request)).StatusCode;
    }

    private static ServiceProcess Start(params (string, string)[] extra) => ServiceProcess.Start("xff", ProcessSettings.For("all", null, "",
        [("RateLimit__Enabled", "true"), ("RateLimit__PermitLimit", "2"), ("RateLimit__Window", "00:10:00"), .. extra]));

    [Fact]
    public async Task Behind_a_trusted_balancer_each_forwarded_client_has_its_own_window_and_a_spoofed_entry_is_ignored()
    {
        await using var service = Start(("RinServe__TrustedProxies__0", "127.0.0.1"));
        await service.WaitHealthyAsync("/healthz/ready", TimeSpan.FromSeconds(60));
        using var client = new HttpClient { BaseAddress = new Uri(service.Url) };
        Assert.Equal(HttpStatusCode.BadRequest, await PostAsync(client, "198.51.100.7"));
        Assert.Equal(HttpStatusCode.BadRequest, await PostAsync(client, "198.51.100.7"));
        Assert.Equal(HttpStatusCode.TooManyRequests, await PostAsync(client, "198.51.100.7"));
        Assert.Equal(HttpStatusCode.BadRequest, await PostAsync(client, "198.51.100.8")); // another client: its own window
        // What a client wrote itself comes first; the balancer appends the address it saw. Only that last entry counts.
        Assert.Equal(HttpStatusCode.TooManyRequests, await PostAsync(client, "198.51.100.9, 198.51.100.7"));
        Assert.Equal(HttpStatusCode.BadRequest, await PostAsync(client, "198.51.100.7, 198.51.100.8"));
    }

    [Fact]
    public async Task Without_trusted_proxies_the_header_is_ignored_and_the_peer_is_the_client()
    {
        await using var service = Start();
        await service.WaitHealthyAsync("/healthz/ready", TimeSpan.FromSeconds(60));
        using var client = new HttpClient { BaseAddress = new Uri(service.Url) };
        Assert.Equal(HttpStatusCode.BadRequest, await PostAsync(client, "198.51.100.7"));
        Assert.Equal(HttpStatusCode.BadRequest, await PostAsync(client, "198.51.100.8"));
        Assert.Equal(HttpStatusCode.TooManyRequests, await PostAsync(client, "198.51.100.9")); // one peer, one window
        Assert.Equal(HttpStatusCode.TooManyRequests, await PostAsync(client, null));
    }
}
