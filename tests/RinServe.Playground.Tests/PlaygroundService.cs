using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace RinServe.Playground.Tests;

/// <summary>
/// The built service as a real process on a loopback port, serving only the shipped models it is given
/// (copied to a folder of their own), so a browser can load the page from it.
/// </summary>
public sealed class PlaygroundService : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _lines = new();

    private readonly string _models;

    private PlaygroundService(Process process, int port, string models)
    {
        _process = process;
        _models = models;
        Url = $"http://127.0.0.1:{port}";
    }

    public string Url { get; }

    public string Output => string.Join('\n', _lines);

    public static string RepoRoot => Testing.TestPaths.RepoRoot;

    public static async Task<PlaygroundService> StartAsync(IReadOnlyList<string> files, IReadOnlyDictionary<string, string> environment)
    {
        var models = Directory.CreateTempSubdirectory("rinserve-playground-models-").FullName;
        foreach (var file in files)
        {
            File.Copy(Path.Combine(RepoRoot, "models", file), Path.Combine(models, file));
        }
        var port = Testing.TestPaths.FreePort();
        var info = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = RepoRoot,
        };
        info.ArgumentList.Add(Dll);
        info.ArgumentList.Add("--urls");
        info.ArgumentList.Add($"http://127.0.0.1:{port}");
        info.Environment["RinServe__ModelsPath"] = models;
        foreach (var (key, value) in environment)
        {
            info.Environment[key] = value;
        }
        var process = Process.Start(info) ?? throw new InvalidOperationException("the service did not start");
        var service = new PlaygroundService(process, port, models);
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { service._lines.Enqueue(e.Data); } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { service._lines.Enqueue(e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        await service.WaitReadyAsync(TimeSpan.FromSeconds(90));
        return service;
    }

    /// <summary>The WebApi build of the same configuration as this test build.</summary>
    private static string Dll => Testing.TestPaths.WebApiDll;


    private async Task WaitReadyAsync(TimeSpan timeout)
    {
        using var client = new HttpClient { BaseAddress = new Uri(Url), Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"the service exited with {_process.ExitCode}:\n{Output}");
            }
            try
            {
                if ((await client.GetAsync("/healthz/ready")).IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
            }
            await Task.Delay(200);
        }
        throw new TimeoutException($"the service was not ready within {timeout}:\n{Output}");
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
        Directory.Delete(_models, recursive: true);
    }
}
