using System.Diagnostics;

namespace RinServe.WebApi.Tests;

/// <summary>
/// The drills' side of the worker's step gate (<c>Testing:StepGate</c>, src/RinServe.Jobs/Worker/StepGate.cs): a FIFO that
/// holds each job of one class after its first step until <see cref="Release"/> writes a line. The drill waits for the
/// service's "Step gate: holding job ID" line (<see cref="HeldAsync"/>) instead of for a time.
/// </summary>
public sealed class StepGateFifo : IDisposable
{
    private readonly string _folder = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "rinserve-gate-" + Guid.NewGuid().ToString("N"));

    /// <param name="gatedClass">The class whose jobs are held; null: every job.</param>
    public StepGateFifo(long? gatedClass)
    {
        GatedClass = gatedClass;
        Directory.CreateDirectory(_folder);
        Path = System.IO.Path.Combine(_folder, "gate");
        using var mkfifo = Process.Start("mkfifo", [Path]) ?? throw new InvalidOperationException("mkfifo did not start");
        mkfifo.WaitForExit();
        if (mkfifo.ExitCode != 0)
        {
            throw new InvalidOperationException($"mkfifo {Path} failed with {mkfifo.ExitCode}");
        }
    }

    public string Path { get; }

    public long? GatedClass { get; }

    /// <summary>The service's environment settings that turn the gate on.</summary>
    public (string, string)[] Settings => GatedClass is { } gated
        ? [("Testing__StepGate", Path), ("Testing__StepGateClass", gated.ToString(System.Globalization.CultureInfo.InvariantCulture))]
        : [("Testing__StepGate", Path)];

    /// <summary>Completes when the service holds job <paramref name="jobId"/> (any job: null) at the gate.</summary>
    public Task HeldAsync(ServiceProcess service, string? jobId, TimeSpan timeout) => service.WaitForLineAsync($"Step gate: holding job {jobId}", timeout);

    /// <summary>Lets the held job go on (opening the FIFO for writing waits for the gate's reader, which is there once held).</summary>
    public async Task Release(TimeSpan timeout) =>
        await Task.Run(() => File.WriteAllText(Path, "go\n")).WaitAsync(timeout);

    public void Dispose() => Directory.Delete(_folder, recursive: true);
}
