using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using Microsoft.Extensions.Options;
using Polly;
using Polly.Retry;

namespace RinServe.WebApi.Webhooks;

/// <summary>How one delivery ended.</summary>
public enum WebhookOutcome { Delivered, GaveUp, Refused }

/// <summary>
/// POSTs one signed webhook, with retries (Polly: exponential backoff with jitter, a timeout per attempt) until a 2xx
/// answer or <c>Webhooks:MaxAttempts</c>. Never follows a redirect (a 3xx is a failed attempt). Every connection goes
/// through <see cref="WebhookAddressPolicy"/> for the address actually dialled.
/// </summary>
public sealed class WebhookSender : IDisposable
{
    private readonly WebhooksOptions _options;
    private readonly WebhookAddressPolicy _policy;
    private readonly TimeProvider _time;
    private readonly ILogger<WebhookSender> _logger;
    private readonly HttpClient _http;
    private readonly ResiliencePipeline<HttpResponseMessage> _pipeline;
    private readonly byte[] _key;

    public WebhookSender(IOptions<WebhooksOptions> options, WebhookAddressPolicy policy, TimeProvider time, ILogger<WebhookSender> logger)
    {
        _options = options.Value;
        _policy = policy;
        _time = time;
        _logger = logger;
        _key = WebhookSigner.KeyOf(_options.Secret) ?? [];
        _http = new HttpClient(new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            UseProxy = false,
            UseCookies = false,
            ConnectTimeout = _options.Timeout,
            PooledConnectionLifetime = TimeSpan.FromMinutes(1),
            ConnectCallback = ConnectAsync,
        })
        { Timeout = Timeout.InfiniteTimeSpan }; // the pipeline's timeout, per attempt
        _pipeline = new ResiliencePipelineBuilder<HttpResponseMessage>()
            .AddRetry(new RetryStrategyOptions<HttpResponseMessage>
            {
                MaxRetryAttempts = _options.MaxAttempts - 1,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = _options.FirstRetryDelay,
                ShouldHandle = args => ValueTask.FromResult(args.Outcome switch
                {
                    { Exception: { } refused } when Refusal(refused) is not null => false,
                    { Exception: OperationCanceledException } when args.Context.CancellationToken.IsCancellationRequested => false,
                    { Exception: not null } => true,
                    { Result: { } response } => !response.IsSuccessStatusCode,
                    _ => false,
                }),
                OnRetry = args =>
                {
                    _logger.LogInformation("Webhook attempt {Attempt} failed ({Outcome}); retrying in {Delay}",
                        args.AttemptNumber + 1, args.Outcome.Exception?.Message ?? $"HTTP {(int?)args.Outcome.Result?.StatusCode}", args.RetryDelay);
                    args.Outcome.Result?.Dispose();
                    return ValueTask.CompletedTask;
                },
            })
            .AddTimeout(_options.Timeout)
            .Build();
    }

    /// <summary>POSTs <paramref name="body"/> (JSON) to <paramref name="url"/> as webhook <paramref name="id"/>, signed anew at each attempt.</summary>
    public async Task<WebhookOutcome> DeliverAsync(Uri url, string id, byte[] body, CancellationToken ct)
    {
        try
        {
            using var response = await _pipeline.ExecuteAsync(async token =>
            {
                var timestamp = _time.GetUtcNow().ToUnixTimeSeconds();
                using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new ByteArrayContent(body) };
                request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
                request.Headers.Add("webhook-id", id);
                request.Headers.Add("webhook-timestamp", timestamp.ToString(System.Globalization.CultureInfo.InvariantCulture));
                request.Headers.Add("webhook-signature", WebhookSigner.Sign(_key, id, timestamp, body));
                request.Headers.UserAgent.Add(new ProductInfoHeaderValue("RinServe-Webhooks", "1"));
                return await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, token).ConfigureAwait(false);
            }, ct).ConfigureAwait(false);
            return response.IsSuccessStatusCode ? WebhookOutcome.Delivered : WebhookOutcome.GaveUp;
        }
        catch (Exception ex) when (Refusal(ex) is { } refused)
        {
            _logger.LogWarning("Webhook {Id} refused: {Reason}", id, refused.Message);
            return WebhookOutcome.Refused;
        }
        catch (Exception ex) when (ex is HttpRequestException or Polly.Timeout.TimeoutRejectedException or IOException)
        {
            _logger.LogWarning("Webhook {Id} given up after {Attempts} attempts: {Reason}", id, _options.MaxAttempts, ex.Message);
            return WebhookOutcome.GaveUp;
        }
    }

    /// <summary>Resolves the host and dials only addresses the policy allows: the check that a later DNS answer cannot dodge.</summary>
    private async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken ct)
    {
        var (host, port) = (context.DnsEndPoint.Host, context.DnsEndPoint.Port);
        var addresses = await WebhookAddressPolicy.ResolveAsync(host, ct).ConfigureAwait(false);
        var usable = _policy.IsAllowed(host, port) ? addresses : [.. addresses.Where(WebhookAddressPolicy.IsPublic)];
        if (usable.Length == 0)
        {
            throw new WebhookRefusedException($"{host}:{port} resolves only to addresses that are not public ({string.Join(", ", addresses.Select(a => a.ToString()))}) and is not in Webhooks:AllowedHosts");
        }
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(usable, port, ct).ConfigureAwait(false);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public void Dispose() => _http.Dispose();

    /// <summary>The policy's refusal inside what HttpClient threw (it wraps what the connect callback throws), or null.</summary>
    private static WebhookRefusedException? Refusal(Exception? ex)
    {
        for (; ex is not null; ex = ex.InnerException)
        {
            if (ex is WebhookRefusedException refused)
            {
                return refused;
            }
        }
        return null;
    }
}

/// <summary>The policy refused the address a webhook would connect to; never retried.</summary>
public sealed class WebhookRefusedException(string message) : HttpRequestException(message);
