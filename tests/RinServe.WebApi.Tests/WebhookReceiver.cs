using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using RinServe.WebApi.Webhooks;

namespace RinServe.WebApi.Tests;

/// <summary>One webhook as a receiver saw it.</summary>
public sealed record ReceivedWebhook(string Id, long Timestamp, string Signature, byte[] Body, string Path)
{
    public bool Verifies(byte[] key) => WebhookSigner.Verify(key, Id, Timestamp, Body, Signature);

    public System.Text.Json.JsonElement Json => System.Text.Json.JsonDocument.Parse(Body).RootElement;
}

/// <summary>
/// A real HTTP receiver on loopback (HttpListener) that records every request and answers as the test says
/// (<see cref="Answer"/>: a status, and a Location for a redirect). Tests wait on <see cref="NextAsync"/>: an event.
/// </summary>
public sealed class WebhookReceiver : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly Channel<ReceivedWebhook> _received = Channel.CreateUnbounded<ReceivedWebhook>();
    private readonly Task _loop;

    public WebhookReceiver()
    {
        Port = Testing.TestPaths.FreePort();
        _listener.Prefixes.Add($"http://127.0.0.1:{Port}/");
        _listener.Start();
        _loop = Task.Run(LoopAsync);
    }

    public int Port { get; }

    public string Url => $"http://127.0.0.1:{Port}/hook";

    /// <summary>Every request so far, in arrival order.</summary>
    public ConcurrentQueue<ReceivedWebhook> All { get; } = new();

    /// <summary>The answer to the n-th request (1-based): a status code, and where a 3xx points.</summary>
    public Func<int, (int Status, string? Location)> Answer { get; set; } = _ => (204, null);

    public async Task<ReceivedWebhook> NextAsync(TimeSpan timeout) => await _received.Reader.ReadAsync().AsTask().WaitAsync(timeout);

    private async Task LoopAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException)
            {
                return;
            }
            using var body = new MemoryStream();
            await context.Request.InputStream.CopyToAsync(body);
            var headers = context.Request.Headers;
            var hook = new ReceivedWebhook(headers["webhook-id"] ?? "", long.TryParse(headers["webhook-timestamp"], out var t) ? t : 0,
                headers["webhook-signature"] ?? "", body.ToArray(), context.Request.Url?.AbsolutePath ?? "");
            All.Enqueue(hook);
            var (status, location) = Answer(All.Count);
            context.Response.StatusCode = status;
            if (location is not null)
            {
                context.Response.RedirectLocation = location;
            }
            context.Response.Close();
            _received.Writer.TryWrite(hook);
        }
    }

    public void Dispose()
    {
        _listener.Close();
        _loop.Wait(TimeSpan.FromSeconds(5));
    }
}

/// <summary>A loopback port that counts every connection made to it: the proof that nothing reached it.</summary>
public sealed class ConnectionTrap : IDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly Task _loop;
    private int _connections;

    public ConnectionTrap()
    {
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _loop = Task.Run(async () =>
        {
            while (true)
            {
                try
                {
                    using var client = await _listener.AcceptTcpClientAsync();
                    Interlocked.Increment(ref _connections);
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException)
                {
                    return;
                }
            }
        });
    }

    public int Port { get; }

    public int Connections => Volatile.Read(ref _connections);

    public void Dispose()
    {
        _listener.Stop();
        _loop.Wait(TimeSpan.FromSeconds(5));
    }
}
