using System.Text.Json;

namespace RinServe.Onnx.Tests;

/// <summary>
/// Issue 27's proof program (bench/cuda/README.md) on a machine without CUDA, as every test machine is: it must
/// refuse to stand in the CPU for the GPU unless asked to rehearse, and then run every path and say so.
/// </summary>
public sealed class CudaProofTests : IDisposable
{
    private static readonly string Tiny = Path.Combine(ParityFixtures.ParityFolder, "tiny.onnx");
    private readonly string _out = Path.Combine(Path.GetTempPath(), "rin-cuda-proof-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_out))
        {
            Directory.Delete(_out, recursive: true);
        }
    }

    [Fact]
    public void Cuda_proof_fails_without_cuda_instead_of_falling_back_to_the_cpu()
    {
        var code = CudaProof.Run(["--model", Tiny, "--out", _out, "--parity", "16"]);

        Assert.Equal(1, code);
        using var report = JsonDocument.Parse(File.ReadAllText(Path.Combine(_out, "proof.json")));
        Assert.False(report.RootElement.GetProperty("cuda_available").GetBoolean());
        Assert.StartsWith("FAIL: the CUDA execution provider cannot be used", report.RootElement.GetProperty("verdict").GetString());
        Assert.Empty(report.RootElement.GetProperty("models").EnumerateArray());
    }

    [Fact]
    public void Cuda_proof_rehearsal_runs_every_path_on_the_cpu_and_says_so()
    {
        var code = CudaProof.Run(
            ["--model", Tiny, "--out", _out, "--rehearse", "--parity", "16", "--parity-steps", "3", "--batches", "1,2",
             "--steps", "2", "--rounds", "1", "--extras", "--extra-batches", "1"]);

        Assert.Equal(0, code);
        var root = JsonDocument.Parse(File.ReadAllText(Path.Combine(_out, "proof.json"))).RootElement;
        Assert.EndsWith("(REHEARSAL on the CPU provider: not a GPU result)", root.GetProperty("verdict").GetString());
        Assert.Equal("CPUExecutionProvider", root.GetProperty("device_provider").GetString());
        var model = Assert.Single(root.GetProperty("models").EnumerateArray());
        Assert.True(model.GetProperty("placement").GetProperty("profiled_nodes").GetInt32() > 0);
        // CPU against CPU: the teacher-forced x̂0 must agree exactly, and so must the method's own check.
        Assert.All(model.GetProperty("parity").EnumerateArray(), p =>
        {
            Assert.Equal(0.0, p.GetProperty("max_abs_x0_teacher_forced").GetDouble());
            Assert.Equal(0.0, p.GetProperty("method_error").GetDouble());
            Assert.Equal(3, p.GetProperty("per_step_max_abs_x0").GetArrayLength());
        });
        // Batches 1 and 2 with the service's options, then three extra variants at batch 1.
        Assert.Equal(5, model.GetProperty("timings").GetArrayLength());
        Assert.Contains("REHEARSAL", File.ReadAllText(Path.Combine(_out, "proof.md")));
    }
}
