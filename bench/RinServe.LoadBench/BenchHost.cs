using System.Diagnostics;
using System.Globalization;
using RinServe.Testing;

/// <summary>What the load benches share: the service process, readiness, percentiles, arguments.</summary>
internal static class BenchHost
{
    public static double Percentile(List<double> values, double p)
    {
        var sorted = values.Order().ToList();
        return sorted.Count == 0 ? double.NaN : sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];
    }

    /// <summary>One RinServe process on a free loopback port: <paramref name="redis"/> null runs the embedded in-process queue.</summary>
        public static Process StartService(string dll, string root, string models, string? redis, string threads, IReadOnlyDictionary<string, string> settings)
    {
        var port = RedisServer.FreePort();
        var info = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            WorkingDirectory = root,
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        info.ArgumentList.Add(dll);
        info.ArgumentList.Add("--urls");
        info.ArgumentList.Add($"http://127.0.0.1:{port}");
        if (redis is not null)
        {
            info.Environment["RinServe__Redis"] = redis;
        }
        info.Environment["RinServe__ModelsPath"] = models;
        info.Environment["Onnx__IntraOpThreads"] = threads;
        info.Environment["RateLimit__Enabled"] = "false";
        info.Environment["Sampling__MaxWaitSeconds"] = "600";
        info.Environment["Sampling__DefaultWaitSeconds"] = "600";
        info.Environment["Logging__LogLevel__Default"] = "Warning";
        foreach (var (key, value) in settings)
        {
            info.Environment[key] = value;
        }
        var process = Process.Start(info)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { Console.Error.WriteLine(e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        process.StartInfo.Environment["BENCH_URL"] = $"http://127.0.0.1:{port}";
        return process;
    }

    public static async Task<string> WaitReadyAsync(Process service)
    {
        var url = service.StartInfo.Environment["BENCH_URL"]!;
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        for (var i = 0; i < 600; i++)
        {
            if (service.HasExited)
            {
                throw new InvalidOperationException($"service exited with {service.ExitCode}");
            }
            try
            {
                if ((await client.GetAsync(url + "/healthz/ready")).IsSuccessStatusCode)
                {
                    return url;
                }
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
            }
            await Task.Delay(100);
        }
        throw new TimeoutException("service not ready within 60 s");
    }

    public static async Task<string> FirstModelAsync(HttpClient client)
    {
        using var doc = System.Text.Json.JsonDocument.Parse(await client.GetStringAsync("/models"));
        var first = doc.RootElement[0];
        Console.Error.WriteLine($"# model {first.GetProperty("name")} res {first.GetProperty("resolution")} on {first.GetProperty("executionProvider")}");
        return first.GetProperty("name").GetString()!;
    }

    public static string FindRepoRoot() => TestPaths.RepoRoot;

    public static string FindDll(string root)
    {
        foreach (var configuration in new[] { "Release", "Debug" })
        {
            var dll = Path.Combine(root, "src", "RinServe.WebApi", "bin", configuration, "net10.0", "RinServe.WebApi.dll");
            if (File.Exists(dll))
            {
                return dll;
            }
        }
        throw new FileNotFoundException("build src/RinServe.WebApi first (dotnet build -c Release src/RinServe.WebApi)");
    }

    public static Dictionary<string, string> ParseArgs(string[] args)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            result[args[i].TrimStart('-')] = args[i + 1];
        }
        return result;
    }
}
