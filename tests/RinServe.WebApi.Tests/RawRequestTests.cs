using System.Text.Json;

namespace RinServe.WebApi.Tests;

/// <summary>The service as an OS process with short Kestrel timeouts (set through Kestrel:Limits), for raw-socket tests.</summary>
public sealed class RawService : IAsyncLifetime
{
    public ServiceProcess Process { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Process = ServiceProcess.Start("raw", new Dictionary<string, string>
        {
            ["RinServe__ModelsPath"] = TestModels.Folder,
            ["RateLimit__Enabled"] = "false",
            ["Onnx__IntraOpThreads"] = "1",
            ["Onnx__WarmUp"] = "false",
            ["Kestrel__Limits__RequestHeadersTimeout"] = "00:00:01",
            ["Kestrel__Limits__KeepAliveTimeout"] = "00:00:01",
            ["Logging__LogLevel__Default"] = "Warning",
        });
        await Process.WaitHealthyAsync("/healthz/ready", TimeSpan.FromSeconds(60));
    }

    public async Task DisposeAsync() => await Process.DisposeAsync();
}

/// <summary>Requests only a raw socket can send, each a defect the hostile-input corpus found (issue 14).</summary>
public sealed class RawRequestTests(RawService service) : IClassFixture<RawService>
{
    private Task<RawResponse> SendAsync(string request, TimeSpan? timeout = null) =>
        RawHttp.SendAsync(service.Process.Port, [new Segment(System.Text.Encoding.ASCII.GetBytes(request), TimeSpan.Zero)], halfClose: false, timeout ?? TimeSpan.FromSeconds(10));

    [Fact]
    public async Task Kestrel_limits_come_from_configuration_so_stalled_clients_are_cut_off_quickly()
    {
        // Kestrel's defaults hold a stalled request 30 s (RequestHeadersTimeout) and a silent connection 130 s (KeepAliveTimeout).
        var stalled = SendAsync("GET /models HTTP/1.1\r\nHost: x\r\n");
        var silent = SendAsync("");

        var headers = await stalled;
        Assert.True(headers.Outcome == RawOutcome.Answered && headers.Status == 408, $"{headers.Outcome} {headers.Status} after {headers.Elapsed.TotalSeconds:F1} s");
        Assert.True(headers.Elapsed < TimeSpan.FromSeconds(5), $"408 only after {headers.Elapsed.TotalSeconds:F1} s");
        var idle = await silent;
        Assert.True(idle.Outcome == RawOutcome.ClosedWithoutAnswer, $"{idle.Outcome} after {idle.Elapsed.TotalSeconds:F1} s");
        Assert.True(idle.Elapsed < TimeSpan.FromSeconds(5), $"closed only after {idle.Elapsed.TotalSeconds:F1} s");
    }

    [Theory]
    [InlineData("ffffffffffffffffffff")] // overflows: Kestrel throws a bare IOException, not a BadHttpRequestException
    [InlineData("zz")] // not hex: Kestrel's own BadHttpRequestException
    public async Task A_bad_chunk_size_is_a_400_problem_not_a_500(string size)
    {
        var response = await SendAsync(
            "POST /generate HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
            $"{size}\r\n{{\"class\":1,\"steps\":2}}\r\n0\r\n\r\n");

        Assert.True(response.Status == 400, $"{response.Outcome} {response.Status}: {response.BodyText}");
        Assert.Equal("application/problem+json", response.MediaType);
        var problem = JsonDocument.Parse(response.Body).RootElement;
        Assert.Equal(400, problem.GetProperty("status").GetInt32());
        Assert.Contains("chunk", problem.GetProperty("detail").GetString(), StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("Unhandled exception", service.Process.Output, StringComparison.Ordinal);
    }
}
