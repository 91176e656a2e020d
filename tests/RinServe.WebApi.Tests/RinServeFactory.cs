using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using RinServe.Jobs;

namespace RinServe.WebApi.Tests;

/// <summary>
/// The service in-memory, on the tiny fixture model (16 px, real ONNX), with test-sized settings; <paramref name="gate"/>,
/// when given, is the worker's step gate (a test holds a running job with it).
/// </summary>
public sealed class RinServeFactory(IReadOnlyDictionary<string, string?> settings, IStepGate? gate = null) : WebApplicationFactory<Program>
{
    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        if (gate is not null)
        {
            builder.ConfigureTestServices(services => services.AddSingleton(gate));
        }

        var defaults = new Dictionary<string, string?>
        {
            ["RinServe:ModelsPath"] = TestModels.Folder,
            ["Sampling:DefaultSteps"] = "3",
            ["Sampling:MaxSteps"] = "20000",
            ["Sampling:DefaultWaitSeconds"] = "20",
            ["RateLimit:Enabled"] = "false",
            ["Onnx:IntraOpThreads"] = "1",
            ["Onnx:WarmUp"] = "false",
            ["Workers:PollInterval"] = "00:00:00.005",
            ["Workers:HeartbeatInterval"] = "00:00:00.100",
            ["Workers:MaxBatchDelay"] = "00:00:00.005",
            // Tests leave long jobs running; the shutdown drain has its own tests (ShutdownTests).
            ["RinServe:ShutdownDrainTimeout"] = "00:00:01",
            ["Jobs:KeyPrefix"] = $"t{Guid.NewGuid():N}:",
            ["Logging:LogLevel:Default"] = "Warning",
            ["Logging:Console:FormatterName"] = "simple",
        };
        foreach (var (key, value) in settings)
        {
            defaults[key] = value;
        }
        foreach (var (key, value) in defaults)
        {
            builder.UseSetting(key, value);
        }
    }
}

/// <summary>The fixture models: real ONNX files the trainer exported for tests.</summary>
public static class TestModels
{
    private static readonly Lazy<string> TinyFolder = new(() =>
    {
        // A folder with only tiny.onnx, so the service has exactly one model (the parity folder has three).
        var folder = Path.Combine(Path.GetTempPath(), "rinserve-tests-models");
        Directory.CreateDirectory(folder);
        var target = Path.Combine(folder, "tiny.onnx");
        var source = Path.Combine(RepoRoot, "tests", "fixtures", "parity", "tiny.onnx");
        if (!File.Exists(target) || new FileInfo(target).Length != new FileInfo(source).Length)
        {
            File.Copy(source, target, overwrite: true);
        }
        return folder;
    });

    public static string Folder => TinyFolder.Value;

    public static string ParityFolder => Path.Combine(RepoRoot, "tests", "fixtures", "parity");

    public static string RepoRoot => Testing.TestPaths.RepoRoot;
}
