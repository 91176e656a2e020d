using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using RinServe.Testing;

namespace RinServe.WebApi.Tests;

/// <summary>One service per test class: in-process queue.</summary>
public sealed class InProcessService : IAsyncLifetime
{
    public RinServeFactory Factory { get; private set; } = null!;

    /// <summary>Holds the job of seed <see cref="ApiContract.HeldSeed"/> after its first step (ApiContract's running job).</summary>
    public HeldJobGate Gate { get; } = ApiContract.NewGate();

    public Task InitializeAsync()
    {
        Factory = new RinServeFactory(new Dictionary<string, string?>(), Gate);
        _ = Factory.Server;
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await Factory.DisposeAsync();
        Gate.Dispose();
    }
}

/// <summary>One service per test class: API and worker in one process, jobs through a real redis-server.</summary>
public sealed class RedisBackedService : IAsyncLifetime
{
    public RedisServer Redis { get; private set; } = null!;
    public RinServeFactory Factory { get; private set; } = null!;

    /// <summary>Holds the job of seed <see cref="ApiContract.HeldSeed"/> after its first step (ApiContract's running job).</summary>
    public HeldJobGate Gate { get; } = ApiContract.NewGate();

    public async Task InitializeAsync()
    {
        Redis = await RedisServer.StartAsync();
        Factory = new RinServeFactory(new Dictionary<string, string?> { ["RinServe:Redis"] = Redis.ConnectionString }, Gate);
        _ = Factory.Server;
    }

    public async Task DisposeAsync()
    {
        await Factory.DisposeAsync();
        Gate.Dispose();
        await Redis.DisposeAsync();
    }
}

internal static class Http
{
    public static async Task<JsonElement> Json(this HttpResponseMessage response) =>
        JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();

    public static async Task<JsonElement> WaitForStateAsync(HttpClient client, string id, string state, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(30));
        while (true)
        {
            var job = await client.GetFromJsonAsync<JsonElement>($"/jobs/{id}");
            if (job.GetProperty("status").GetString() == state)
            {
                return job;
            }
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"job {id} is {job.GetProperty("status")} not {state}: {job}");
            }
            await Task.Delay(20);
        }
    }

    /// <summary>
    /// Waits until the server has at least <paramref name="atLeast"/> requests of <paramref name="method"/> in flight, by its
    /// own count (ASP.NET Core's http.server.active_requests on /metrics): the event that a request sent without awaiting
    /// its answer has reached the server, instead of a sleep.
    /// </summary>
    public static async Task WaitForActiveRequestsAsync(HttpClient client, string method, int atLeast, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var active = (await client.GetStringAsync("/metrics")).Split('\n')
                .Where(line => line.StartsWith("http_server_active_requests{", StringComparison.Ordinal)
                    && line.Contains($"http_request_method=\"{method}\"", StringComparison.Ordinal))
                .Sum(line => double.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture));
            if (active >= atLeast)
            {
                return;
            }
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"{active} {method} requests in flight, not {atLeast}");
            }
            await Task.Delay(20);
        }
    }

    public static async Task AssertProblemAsync(HttpResponseMessage response, HttpStatusCode status, string? parameter)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"expected {(int)status}, got {(int)response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonDocument.Parse(body).RootElement;
        Assert.Equal((int)status, problem.GetProperty("status").GetInt32());
        if (parameter is not null)
        {
            Assert.True(problem.TryGetProperty("parameter", out var named), $"no 'parameter' in {body}");
            Assert.Equal(parameter, named.GetString());
            Assert.False(string.IsNullOrWhiteSpace(problem.GetProperty("detail").GetString()));
        }
    }
}
