using System.Collections.Concurrent;
using System.Diagnostics;

namespace RinServe.WebApi.Tests;

/// <summary>The built service as a real OS process (<c>dotnet RinServe.WebApi.dll</c>), configured by environment variables.</summary>
public sealed class ServiceProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _lines = new();
    private readonly Lock _waitersLock = new();
    private readonly List<(string Text, TaskCompletionSource Seen)> _waiters = [];

    public string Name { get; }
    public int Port { get; }
    public string Url => $"http://127.0.0.1:{Port}";

    private ServiceProcess(string name, int port, Process process)
    {
        Name = name;
        Port = port;
        _process = process;
    }

    public static ServiceProcess Start(string name, IReadOnlyDictionary<string, string> environment)
    {
        var port = Testing.RedisServer.FreePort();
        var info = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = TestModels.RepoRoot,
        };
        info.ArgumentList.Add(Dll);
        info.ArgumentList.Add("--urls");
        info.ArgumentList.Add($"http://127.0.0.1:{port}");
        foreach (var (key, value) in environment)
        {
            info.Environment[key] = value;
        }
        var process = Process.Start(info) ?? throw new InvalidOperationException($"{name} did not start");
        var service = new ServiceProcess(name, port, process);
        process.OutputDataReceived += (_, e) => service.Add(e.Data);
        process.ErrorDataReceived += (_, e) => service.Add(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return service;
    }

    /// <summary>The WebApi build next to this test build (same configuration).</summary>
    public static string Dll => Testing.TestPaths.WebApiDll;

    public bool HasExited => _process.HasExited;

    /// <summary>The OS process id (for reading <c>/proc/&lt;pid&gt;/status</c>).</summary>
    public int ProcessId => _process.Id;

    public string Output => string.Join('\n', _lines);

    public int CountLines(string text) => _lines.Count(l => l.Contains(text, StringComparison.Ordinal));

    /// <summary>Completes when the process has written a line containing <paramref name="text"/> (at once if it already has): an event, not a poll.</summary>
    public async Task WaitForLineAsync(string text, TimeSpan timeout)
    {
        var seen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_waitersLock)
        {
            if (CountLines(text) > 0)
            {
                return;
            }

            _waiters.Add((text, seen));
        }

        try
        {
            await seen.Task.WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"{Name} wrote no line with '{text}' within {timeout}:\n{Output}");
        }
    }

    private void Add(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_waitersLock)
        {
            _lines.Enqueue(line);
            foreach (var waiter in _waiters.Where(w => line.Contains(w.Text, StringComparison.Ordinal)).ToList())
            {
                waiter.Seen.TrySetResult();
                _waiters.Remove(waiter);
            }
        }
    }

    public async Task WaitHealthyAsync(string path, TimeSpan timeout)
    {
        using var client = new HttpClient { BaseAddress = new Uri(Url), Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"{Name} exited with {_process.ExitCode}:\n{Output}");
            }
            try
            {
                if ((await client.GetAsync(path)).IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException)
            {
            }
            await Task.Delay(100);
        }
        throw new TimeoutException($"{Name} not healthy at {path} within {timeout}:\n{Output}");
    }

    /// <summary>SIGTERM, as Kubernetes or docker stop send it: the host shuts down gracefully.</summary>
    public void Terminate()
    {
        using var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    /// <summary>The exit code once the process ended, or null when it is still running after <paramref name="timeout"/>.</summary>
    public async Task<int?> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
            return _process.ExitCode;
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }

    /// <summary>SIGKILL: no shutdown hooks run, as when a pod or machine dies.</summary>
    public void Kill()
    {
        _process.Kill(entireProcessTree: true);
        _process.WaitForExit();
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }
}
