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

    /// <summary>The answer to the n-th request (1-based): a status code, and where a 3xx points; it may wait.</summary>
    public Func<int, Task<(int Status, string? Location)>> Answer { get; set; } = _ => Task.FromResult<(int, string?)>((204, null));

    /// <summary>Answers at once, as <paramref name="answer"/> says.</summary>
    public Func<int, (int Status, string? Location)> AnswerWith { set => Answer = n => Task.FromResult(value(n)); }

    public async Task<ReceivedWebhook> NextAsync(TimeSpan timeout) => await _received.Reader.ReadAsync().AsTask().WaitAsync(timeout);

    /// <summary>Settings that let a service process sign for and reach this receiver, and take over a dead process's deliveries soon.</summary>
    public (string, string)[] ProcessSettings(string secret) =>
        [("Webhooks__Secret", secret), ("Webhooks__AllowedHosts__0", $"127.0.0.1:{Port}"), ("Webhooks__ReclaimAfter", "00:00:02"),
         ("Webhooks__FirstRetryDelay", "00:00:00.100")];

    /// <summary>
    /// Waits until each job's success webhook came at least once, then checks them all: every signature verifies, every
    /// repeat of a job's webhook carries the same id, no job is told of another end. Returns the deliveries per job.
    /// </summary>
    public async Task<Dictionary<string, int>> WaitForSuccessOfAsync(IReadOnlyCollection<string> jobIds, byte[] key, TimeSpan timeout)
    {
        var expected = jobIds.ToDictionary(id => $"job_{id}_succeeded", id => id);
        var seen = new HashSet<string>();
        using var deadline = new CancellationTokenSource(timeout);
        foreach (var hook in All)
        {
            seen.Add(hook.Id);
        }
        while (!expected.Keys.All(seen.Contains))
        {
            try
            {
                seen.Add((await _received.Reader.ReadAsync(deadline.Token)).Id);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"no webhook for {string.Join(", ", expected.Keys.Where(k => !seen.Contains(k)))}");
            }
        }
        var all = All.ToList();
        Assert.All(all, hook => Assert.True(hook.Verifies(key), $"webhook {hook.Id} does not verify"));
        var mine = all.Where(h => jobIds.Any(id => h.Id.StartsWith($"job_{id}_", StringComparison.Ordinal))).ToList();
        Assert.All(mine, hook => Assert.Contains(hook.Id, expected.Keys)); // the one end each job had
        Assert.All(mine, hook => Assert.Equal(expected[hook.Id], hook.Json.GetProperty("data").GetProperty("id").GetString()));
        return mine.GroupBy(h => expected[h.Id]).ToDictionary(g => g.Key, g => g.Count());
    }

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
            _ = Task.Run(() => HandleAsync(context)); // one at a time would let a slow answer hold up the others
        }
    }

    private int _count;

    private async Task HandleAsync(HttpListenerContext context)
    {
        using var body = new MemoryStream();
        await context.Request.InputStream.CopyToAsync(body);
        var headers = context.Request.Headers;
        var hook = new ReceivedWebhook(headers["webhook-id"] ?? "", long.TryParse(headers["webhook-timestamp"], out var t) ? t : 0,
            headers["webhook-signature"] ?? "", body.ToArray(), context.Request.Url?.AbsolutePath ?? "");
        All.Enqueue(hook);
        var n = Interlocked.Increment(ref _count);
        _received.Writer.TryWrite(hook); // seen as soon as it arrived, whatever the answer will be
        try
        {
            var (status, location) = await Answer(n);
            context.Response.StatusCode = status;
            if (location is not null)
            {
                context.Response.RedirectLocation = location;
            }
            context.Response.Close();
        }
        catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
        {
            // The sender is gone (a killed process): nothing to answer.
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
