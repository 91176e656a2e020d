using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.ML.OnnxRuntime;
using RinServe.Diffusion;
using RinServe.Onnx;

/// <summary>
/// Issue 27's proof of the ONNX Runtime CUDA path (bench/cuda/README.md): where each node runs, x̂0 against
/// the CPU provider, time per sampling step and the share of it outside <c>Run</c>. Without CUDA it fails,
/// unless <c>--rehearse</c>: then the CPU provider stands in for the device and every figure is marked so.
/// </summary>
internal static class CudaProof
{
    private const string Cuda = "CUDAExecutionProvider";
    private const double ParityTolerance = 1e-3;

    public static int Run(string[] args)
    {
        var o = ProofArguments.Parse(args);
        CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
        Directory.CreateDirectory(o.Out);
        // The process's ONNX Runtime environment is made by its first ORT call. Made here, as the service makes it (with the
        // shared intra-op pool of the default options), so that the ModelLoader sessions below run as the service's do.
        OrtThreads.EnsureShared(new OnnxModelOptions().IntraOpThreads, NullLogger.Instance);
        var report = new ProofReport
        {
            OrtVersion = OrtEnv.Instance().GetVersionString(),
            AvailableProviders = OrtEnv.Instance().GetAvailableProviders(),
            Machine = $"{Environment.MachineName}, {Environment.ProcessorCount} cores, .NET {Environment.Version}",
            Rehearsal = o.Rehearse,
        };
        var probe = ProbeCuda(o.Models[0]);
        report.CudaAvailable = probe is null;
        report.CudaError = probe;
        if (probe is not null)
        {
            Console.Error.WriteLine($"CUDA execution provider UNAVAILABLE: {probe}");
            if (!o.Rehearse)
            {
                report.Verdict = "FAIL: the CUDA execution provider cannot be used (no CPU fallback in this proof)";
                return Finish(report, o);
            }

            Console.Error.WriteLine("REHEARSAL: the CPU provider stands in for CUDA below; no figure is a GPU figure.");
        }

        var device = probe is null ? Cuda : "CPUExecutionProvider";
        report.DeviceProvider = device;
        foreach (var path in o.Models)
        {
            var m = new ModelReport { File = Path.GetFileName(path) };
            report.Models.Add(m);
            var stopwatch = Stopwatch.StartNew();
            // One section's failure (an option this ORT does not take, a crash of a variant) costs only that section:
            // GPU minutes are scarce, so the rest still runs, and the error is in the report and the verdict.
            Section(m, "placement", () =>
            {
                m.Placement = Place(path, device == Cuda, o.Out);
                Step($"{m.File}: placement {string.Join(", ", m.Placement.NodesByProvider.Select(p => $"{p.Key} {p.Value}"))}; strict {m.Placement.StrictDynamicBatch}, strict at a fixed batch {m.Placement.StrictFixedBatch}", stopwatch);
            });
            Section(m, "service session", () =>
            {
                using var model = ModelLoader.Load(path, new OnnxModelOptions { ExecutionProvider = device == Cuda ? "cuda" : "cpu" }, NullLogger.Instance);
                m.Resolution = model.Spec.Resolution;
                m.LoadedOn = model.ExecutionProvider;
                if (o.ParityResolutions.Contains(m.Resolution))
                {
                    // The service's own CUDA options (ORT's default TF32 setting), then TF32 off.
                    foreach (var serviceOptions in new[] { true, false })
                    {
                        Section(m, serviceOptions ? "parity" : "parity use_tf32=0", () =>
                        {
                            var parity = Parity(path, device == Cuda, serviceOptions, o.ParitySteps);
                            m.Parity.Add(parity);
                            Step($"{m.File}: x̂0 parity, {parity.CudaOptions}: teacher-forced max |Δx̂0| {parity.MaxAbsX0TeacherForced:E2}, free-running {parity.MaxAbsX0FreeRunning:E2}", stopwatch);
                        });
                    }
                }

                foreach (var batch in o.Batches)
                {
                    Section(m, $"timing batch {batch}", () =>
                    {
                        m.Timings.Add(Time("service options (ExecutionProvider=" + (device == Cuda ? "cuda" : "cpu") + ")", model.Denoiser, model.Session, batch, o.Steps, o.Rounds));
                        Step($"{m.File}: batch {batch}: {m.Timings[^1].StepMs:F3} ms a step, outside Run {m.Timings[^1].OutsideDenoiseShare:P1}", stopwatch);
                    });
                }
            });
            if (o.Extras)
            {
                Section(m, "extras", () => Extras(path, device == Cuda, m, o));
                Step($"{m.File}: extras", stopwatch);
            }

            Save(report, o); // what is done so far survives a crash further on
        }

        var failures = new List<string>();
        foreach (var m in report.Models)
        {
            failures.AddRange(m.Errors.Select(e => $"{m.File}: {e}"));
            if (m.Placement.CpuFloatNodes.Count > 0)
            {
                failures.Add($"{m.File}: {m.Placement.CpuFloatNodes.Count} node(s) with float tensors on the CPU provider");
            }

            failures.AddRange(m.Parity.Where(p => p.ServiceOptions && !p.WithinTolerance)
                .Select(p => $"{m.File}: x̂0 differs from the CPU provider by {p.MaxAbsX0TeacherForced:E2} > {ParityTolerance:E0} ({p.CudaOptions})"));
        }

        var parityDone = report.Models.Where(m => m.Parity.Count > 0).Select(m => m.Resolution).ToHashSet();
        failures.AddRange(o.ParityResolutions.Where(r => !parityDone.Contains(r)).Select(r => $"no model at {r} px for the x̂0 parity"));
        report.Failures = failures;
        report.Verdict = (failures.Count == 0 ? "PASS" : "FAIL: " + string.Join("; ", failures))
            + (o.Rehearse && probe is not null ? " (REHEARSAL on the CPU provider: not a GPU result)" : string.Empty);
        return Finish(report, o);
    }

    private static int Finish(ProofReport report, ProofArguments o)
    {
        Save(report, o);
        Console.WriteLine(report.Verdict);
        return report.Verdict!.StartsWith("PASS", StringComparison.Ordinal) ? 0 : 1;
    }

    private static void Save(ProofReport report, ProofArguments o)
    {
        var json = JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower });
        File.WriteAllText(Path.Combine(o.Out, "proof.json"), json);
        File.WriteAllText(Path.Combine(o.Out, "proof.md"), Markdown(report));
    }

    private static void Section(ModelReport m, string name, Action run)
    {
        try
        {
            run();
        }
        catch (Exception e) when (e is OnnxRuntimeException or InvalidOperationException or ArgumentException or ModelContractException or IOException)
        {
            m.Errors.Add($"{name} failed: {e.GetType().Name}: {e.Message.Trim()}");
            Console.Error.WriteLine($"{m.File}: {m.Errors[^1]}");
        }
    }

    private static void Step(string what, Stopwatch stopwatch) =>
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"[{stopwatch.Elapsed.TotalSeconds,6:F1} s] {what}"));

    /// <summary>Null when a CUDA session of <paramref name="path"/> can be made; else why not.</summary>
    private static string? ProbeCuda(string path)
    {
        try
        {
            using var options = Options(cuda: true);
            using var session = new InferenceSession(path, options);
            return null;
        }
        catch (Exception e) when (e is OnnxRuntimeException or DllNotFoundException or EntryPointNotFoundException or TypeInitializationException)
        {
            return e.Message.Trim();
        }
    }

    /// <summary>The service's session options (ModelLoader), with the CUDA settings and session entries given.</summary>
    private static SessionOptions Options(
        bool cuda, Dictionary<string, string>? cudaSettings = null, bool strict = false, int? fixedBatch = null, string? profilePrefix = null)
    {
        var options = new SessionOptions
        {
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            InterOpNumThreads = 1,
        };
        try
        {
            if (cuda)
            {
                using var provider = new OrtCUDAProviderOptions();
                var settings = new Dictionary<string, string> { ["device_id"] = "0" };
                foreach (var (key, value) in cudaSettings ?? [])
                {
                    settings[key] = value;
                }

                provider.UpdateOptions(settings);
                options.AppendExecutionProvider_CUDA(provider);
            }

            if (strict)
            {
                // ORT refuses to create the session when any node would land on the CPU provider.
                options.AddSessionConfigEntry("session.disable_cpu_ep_fallback", "1");
            }

            if (fixedBatch is { } batch)
            {
                options.AddFreeDimensionOverrideByName("batch", batch);
            }

            if (profilePrefix is not null)
            {
                options.EnableProfiling = true;
                options.ProfileOutputPathPrefix = profilePrefix;
            }

            return options;
        }
        catch
        {
            options.Dispose();
            throw;
        }
    }

    private static (InferenceSession Session, ModelSpec Spec) Open(string path, SessionOptions options)
    {
        var session = new InferenceSession(path, options);
        var metadata = new Dictionary<string, string>(session.ModelMetadata.CustomMetadataMap, StringComparer.Ordinal);
        return (session, ModelContract.ReadMetadata(path, metadata).Spec);
    }

    /// <summary>
    /// Where the nodes run: ORT's own refusal test (<c>session.disable_cpu_ep_fallback</c>) with the dynamic batch
    /// and with the batch fixed, and the provider of every node that ran in a profiled call.
    /// </summary>
    private static PlacementReport Place(string path, bool cuda, string outDir)
    {
        var report = new PlacementReport();
        (report.StrictDynamicBatch, report.StrictDynamicBatchError) = TryStrict(path, cuda, fixedBatch: null);
        (report.StrictFixedBatch, report.StrictFixedBatchError) = TryStrict(path, cuda, fixedBatch: 2);

        var prefix = Path.Combine(Path.GetTempPath(), $"rin-profile-{Environment.ProcessId}-{Path.GetFileNameWithoutExtension(path)}");
        using var options = Options(cuda, profilePrefix: prefix);
        var (session, spec) = Open(path, options);
        string profile;
        using (var denoiser = new OnnxDenoiser(session, spec))
        {
            const int batch = 2;
            var pred = new float[batch * spec.PixelsPerImage];
            var latents = new float[batch * spec.LatentsPerImage];
            var x = Enumerable.Range(0, pred.Length).Select(i => MathF.Sin(i)).ToArray();
            denoiser.Denoise(batch, x, [0.3f, 0.7f], [1L, 7L], latents, pred, latents);
            profile = session.EndProfiling();
        }

        using (var document = JsonDocument.Parse(File.ReadAllText(profile)))
        {
            var nodes = new Dictionary<string, (string Op, string Provider, bool Float, string Shapes)>(StringComparer.Ordinal);
            foreach (var e in document.RootElement.EnumerateArray())
            {
                if (e.GetProperty("cat").GetString() != "Node" || !e.TryGetProperty("args", out var a) || !a.TryGetProperty("provider", out var provider))
                {
                    continue;
                }

                var name = e.GetProperty("name").GetString() ?? string.Empty;
                if (!name.EndsWith("_kernel_time", StringComparison.Ordinal))
                {
                    continue;
                }

                var (isFloat, shapes) = TensorTypes(a);
                nodes[name[..^"_kernel_time".Length]] = (a.GetProperty("op_name").GetString() ?? "?", provider.GetString() ?? "?", isFloat, shapes);
            }

            foreach (var (name, node) in nodes.OrderBy(n => n.Key, StringComparer.Ordinal))
            {
                report.NodesByProvider[node.Provider] = report.NodesByProvider.GetValueOrDefault(node.Provider) + 1;
                if (node.Op.StartsWith("Memcpy", StringComparison.Ordinal))
                {
                    report.MemcpyNodes.Add($"{node.Op} {name} {node.Shapes}");
                }
                else if (cuda && node.Provider != Cuda)
                {
                    report.CpuNodes.Add($"{node.Op} {name} {node.Shapes}");
                    if (node.Float)
                    {
                        report.CpuFloatNodes.Add($"{node.Op} {name} {node.Shapes}");
                    }
                }
            }
        }

        File.Delete(profile);
        report.ProfiledNodes = report.NodesByProvider.Values.Sum();
        return report;
    }

    /// <summary>Whether a node's inputs or outputs include a floating-point tensor, and its types and shapes in words.</summary>
    private static (bool Float, string Shapes) TensorTypes(JsonElement args)
    {
        var isFloat = false;
        var text = new StringBuilder();
        foreach (var side in new[] { "input_type_shape", "output_type_shape" })
        {
            if (!args.TryGetProperty(side, out var list) || list.ValueKind != JsonValueKind.Array)
            {
                continue;
            }

            text.Append(side[0] == 'i' ? "in " : " -> ");
            foreach (var tensor in list.EnumerateArray().SelectMany(t => t.EnumerateObject()))
            {
                isFloat |= tensor.Name is "float" or "float16" or "double" or "bfloat16";
                text.Append(tensor.Name).Append(tensor.Value.GetRawText()).Append(' ');
            }
        }

        return (isFloat, text.ToString().Trim());
    }

    private static (bool Created, string? Error) TryStrict(string path, bool cuda, int? fixedBatch)
    {
        try
        {
            using var options = Options(cuda, strict: true, fixedBatch: fixedBatch);
            using var session = new InferenceSession(path, options);
            return (true, null);
        }
        catch (OnnxRuntimeException e)
        {
            return (false, e.Message.Trim());
        }
    }

    /// <summary>
    /// x̂0 of the device session against the CPU provider's on the same trajectory: the real sampler runs on the CPU
    /// session, the device session sees the very same network inputs at every step, and both x̂0 come from
    /// <see cref="StepKernels.Update"/> with that step's coefficients (teacher-forced, so chaos cannot amplify a
    /// difference). Also the final x̂0 of two independent runs (free-running), for information.
    /// </summary>
    private static ParityReport Parity(string path, bool cuda, bool serviceOptions, int steps)
    {
        var cudaSettings = serviceOptions ? [] : new Dictionary<string, string> { ["use_tf32"] = "0" };
        using var cpuOptions = Options(cuda: false);
        using var deviceOptions = Options(cuda, cudaSettings);
        var (cpuSession, spec) = Open(path, cpuOptions);
        using var cpu = new OnnxDenoiser(cpuSession, spec);
        using var device = new OnnxDenoiser(Open(path, deviceOptions).Session, spec);
        var settings = new SamplerSettings(steps, "ddim", "cosine", spec.SupportsGuidance ? spec.DefaultGuidance : 0f);
        ImageRequest[] images = [new(7 % spec.NumClasses, 3), new(1 % spec.NumClasses, 11)];
        var (_, schedule) = SamplerChecks.Validate(settings, spec);
        var perImage = spec.PixelsPerImage;
        var xt = new float[images.Length * perImage];
        for (var b = 0; b < images.Length; b++)
        {
            PhiloxNoise.Instance.Fill(images[b].Seed, INoiseSource.InitialStep, xt.AsSpan(b * perImage, perImage));
        }

        var shadow = new ShadowDenoiser(cpu, device);
        var report = new ParityReport
        {
            Steps = steps,
            Guidance = settings.Guidance,
            Images = images.Length,
            ServiceOptions = serviceOptions,
            CudaOptions = serviceOptions ? "the service's (ORT's default use_tf32)" : "use_tf32=0",
        };
        new RinSampler(shadow).Sample(settings, images, new float[xt.Length], (i, x, x0) =>
        {
            var times = StepTimes.At(schedule, i, settings.Steps);
            var k = Denoising.At(times.Gamma, settings.Guidance, spec);
            var deviceX0 = new float[xt.Length];
            var cpuX0 = new float[xt.Length];
            for (var b = 0; b < images.Length; b++)
            {
                var image = new Range(b * perImage, (b + 1) * perImage);
                var uncond = new Range((images.Length + b) * perImage, (images.Length + b + 1) * perImage);
                // Update moves x in place: each call gets its own copy of x_t.
                Ddim.Instance.Step(times, k, new RowStep(xt.AsSpan(image).ToArray(), shadow.DevicePred.AsSpan(image), k.Guided ? shadow.DevicePred.AsSpan(uncond) : default, default, default, deviceX0.AsSpan(image)));
                Ddim.Instance.Step(times, k, new RowStep(xt.AsSpan(image).ToArray(), shadow.CpuPred.AsSpan(image), k.Guided ? shadow.CpuPred.AsSpan(uncond) : default, default, default, cpuX0.AsSpan(image)));
            }

            // The same arithmetic on the CPU's own prediction must give the sampler's x̂0 exactly: checks the method.
            report.MethodError = Math.Max(report.MethodError, MaxAbs(cpuX0, x0));
            report.PerStepMaxAbsX0.Add(MaxAbs(deviceX0, x0));
            report.MaxAbsLatents = Math.Max(report.MaxAbsLatents, shadow.MaxAbsLatents);
            x.CopyTo(xt);
        }, onStep: null, CancellationToken.None);
        report.MaxAbsX0TeacherForced = report.PerStepMaxAbsX0.Max();

        var cpuFinal = new float[xt.Length];
        var deviceFinal = new float[xt.Length];
        new RinSampler(cpu).Sample(settings, images, cpuFinal, observer: null, onStep: null, CancellationToken.None);
        new RinSampler(device).Sample(settings, images, deviceFinal, observer: null, onStep: null, CancellationToken.None);
        report.MaxAbsX0FreeRunning = MaxAbs(deviceFinal, cpuFinal);
        report.WithinTolerance = report.MaxAbsX0TeacherForced <= ParityTolerance && report.MethodError == 0;
        return report;
    }

    private static double MaxAbs(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        var max = 0.0;
        for (var i = 0; i < a.Length; i++)
        {
            max = Math.Max(max, Math.Abs((double)a[i] - b[i]));
        }

        return max;
    }

    /// <summary>
    /// Time per sampling step of a whole generation (DDIM, unguided, so the network's batch is the images), the
    /// share of it outside <see cref="IDenoiser.Denoise"/>, and one bare <c>Run</c> on recorded step inputs.
    /// </summary>
    private static TimingReport Time(string variant, IDenoiser denoiser, InferenceSession session, int batch, int steps, int rounds)
    {
        var spec = denoiser.Spec;
        var settings = new SamplerSettings(steps, "ddim", "cosine", 0f);
        var requests = Enumerable.Range(0, batch).Select(i => new ImageRequest(i % spec.NumClasses, (ulong)i)).ToArray();
        var recorder = new RecordingDenoiser(denoiser, keep: 3);
        new RinSampler(recorder).Generate(settings, requests); // warm-up (kernel choice, arenas, JIT), and step inputs

        using var runOptions = new RunOptions();
        var inputs = recorder.StepInputs(batch);
        var (pred, latents) = RecordingDenoiser.Outputs(spec, batch);
        using var predValue = pred;
        using var latentsValue = latents;
        OrtValue[] outputs = [predValue, latentsValue];
        var (inputNames, outputNames) = (RecordingDenoiser.InputNames, RecordingDenoiser.OutputNames);

        var timed = new TimingDenoiser(denoiser);
        var loop = new RinSampler(timed);
        var step = new List<double>();
        var inDenoise = new List<double>();
        var outside = new List<double>();
        var bare = new List<double>();
        for (var round = 0; round < rounds; round++)
        {
            foreach (var input in inputs)
            {
                var start = Stopwatch.GetTimestamp();
                session.Run(runOptions, inputNames, input, outputNames, outputs);
                bare.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            }

            timed.Reset();
            var begin = Stopwatch.GetTimestamp();
            loop.Generate(settings, requests);
            var total = Stopwatch.GetElapsedTime(begin).TotalMilliseconds;
            step.Add(total / steps);
            inDenoise.Add(timed.Milliseconds / steps);
            outside.Add((total - timed.Milliseconds) / total);
        }

        foreach (var value in inputs.SelectMany(v => v))
        {
            value.Dispose();
        }

        return new TimingReport
        {
            Variant = variant,
            Batch = batch,
            Steps = steps,
            Rounds = rounds,
            StepMs = Median(step),
            DenoiseMs = Median(inDenoise),
            BareRunMs = Median(bare),
            OutsideDenoiseShare = Median(outside),
            StepMsPerImage = Median(step) / batch,
        };
    }

    /// <summary>What the figures may call for (issue 27): cuDNN's heuristic search, TF32 off, a fixed-batch strict session.</summary>
    private static void Extras(string path, bool cuda, ModelReport m, ProofArguments o)
    {
        var variants = new List<(string Name, Dictionary<string, string> Settings, bool FixedBatch)>
        {
            ("use_tf32=0", new() { ["use_tf32"] = "0" }, false),
            ("cudnn_conv_algo_search=HEURISTIC", new() { ["cudnn_conv_algo_search"] = "HEURISTIC" }, false),
            ("batch fixed per session, strict (no CPU fallback)", new(), true),
        };
        foreach (var batch in o.ExtraBatches)
        {
            foreach (var (name, settings, fixedBatch) in variants)
            {
                try
                {
                    using var options = Options(cuda, settings, strict: fixedBatch && cuda, fixedBatch: fixedBatch ? batch : null);
                    var (session, spec) = Open(path, options);
                    using var denoiser = new OnnxDenoiser(session, spec);
                    m.Timings.Add(Time(name, denoiser, session, batch, o.Steps, o.Rounds));
                }
                catch (OnnxRuntimeException e)
                {
                    m.Timings.Add(new TimingReport { Variant = name, Batch = batch, Error = e.Message.Trim() });
                }
            }
        }
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private static string Markdown(ProofReport r)
    {
        var inv = CultureInfo.InvariantCulture;
        var s = new StringBuilder();
        s.AppendLine(inv, $"## ONNX Runtime CUDA proof{(r.Rehearsal && !r.CudaAvailable ? " (REHEARSAL on the CPU provider: no GPU figure)" : string.Empty)}");
        s.AppendLine();
        s.AppendLine(inv, $"Verdict: **{r.Verdict}**");
        s.AppendLine();
        s.AppendLine(inv, $"ONNX Runtime {r.OrtVersion}; providers in this build: {string.Join(", ", r.AvailableProviders)}; device provider: {r.DeviceProvider ?? "none"}; {r.Machine}.");
        if (r.CudaError is not null)
        {
            s.AppendLine();
            s.AppendLine(inv, $"CUDA unavailable: `{r.CudaError}`");
        }

        s.AppendLine();
        s.AppendLine("| model | nodes by provider (profiled call) | strict, dynamic batch | strict, batch fixed | non-CUDA nodes | of them with float tensors | Memcpy nodes |");
        s.AppendLine("|---|---|---|---|---|---|---|");
        foreach (var m in r.Models)
        {
            var p = m.Placement;
            s.AppendLine(inv, $"| {m.File} | {string.Join(", ", p.NodesByProvider.Select(n => $"{n.Key} {n.Value}"))} | {(p.StrictDynamicBatch ? "created" : "refused")} | {(p.StrictFixedBatch ? "created" : "refused")} | {p.CpuNodes.Count} | {p.CpuFloatNodes.Count} | {p.MemcpyNodes.Count} |");
        }

        s.AppendLine();
        s.AppendLine("| model | CUDA options | steps | guidance | teacher-forced max abs Δx̂0 | within 1e-3 | free-running final max abs Δx̂0 | max abs Δlatents_out |");
        s.AppendLine("|---|---|---|---|---|---|---|---|");
        foreach (var m in r.Models)
        {
            foreach (var p in m.Parity)
            {
                s.AppendLine(inv, $"| {m.File} | {p.CudaOptions} | {p.Steps} | {p.Guidance} | {p.MaxAbsX0TeacherForced:E2} | {(p.WithinTolerance ? "yes" : "NO")} | {p.MaxAbsX0FreeRunning:E2} | {p.MaxAbsLatents:E2} |");
            }
        }

        s.AppendLine();
        s.AppendLine("| model | res | variant | batch | step ms | step ms per image | in Denoise ms | bare Run ms | share of a step outside Denoise |");
        s.AppendLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var m in r.Models)
        {
            foreach (var t in m.Timings)
            {
                s.AppendLine(t.Error is null
                    ? string.Create(inv, $"| {m.File} | {m.Resolution} | {t.Variant} | {t.Batch} | {t.StepMs:F3} | {t.StepMsPerImage:F3} | {t.DenoiseMs:F3} | {t.BareRunMs:F3} | {t.OutsideDenoiseShare:P1} |")
                    : $"| {m.File} | {m.Resolution} | {t.Variant} | {t.Batch} | failed: {t.Error} | | | | |");
            }
        }

        foreach (var m in r.Models.Where(m => m.Errors.Count > 0))
        {
            s.AppendLine();
            s.AppendLine(inv, $"Errors of {m.File}: {string.Join("; ", m.Errors)}");
        }

        foreach (var m in r.Models.Where(m => m.Placement.CpuNodes.Count > 0))
        {
            s.AppendLine();
            s.AppendLine(inv, $"Non-CUDA nodes of {m.File}: {string.Join("; ", m.Placement.CpuNodes.Take(60))}");
        }

        return s.ToString();
    }
}

/// <summary>Runs the CPU session for the sampler and the device session on the very same inputs, keeping both predictions.</summary>
internal sealed class ShadowDenoiser(IDenoiser cpu, IDenoiser device) : IDenoiser
{
    public ModelSpec Spec => cpu.Spec;

    public float[] CpuPred { get; private set; } = [];

    public float[] DevicePred { get; private set; } = [];

    public double MaxAbsLatents { get; private set; }

    public void Denoise(
        int batch, ReadOnlySpan<float> x, ReadOnlySpan<float> gamma, ReadOnlySpan<long> classIds, ReadOnlySpan<float> latentsIn, Span<float> pred, Span<float> latentsOut)
    {
        // Copies of the inputs: the sampler may hand the same buffer in and out.
        var inputX = x.ToArray();
        var inputLatents = latentsIn.ToArray();
        var deviceLatents = new float[latentsOut.Length];
        DevicePred = new float[pred.Length];
        device.Denoise(batch, inputX, gamma, classIds, inputLatents, DevicePred, deviceLatents);
        cpu.Denoise(batch, inputX, gamma, classIds, inputLatents, pred, latentsOut);
        CpuPred = pred.ToArray();
        MaxAbsLatents = 0;
        for (var i = 0; i < deviceLatents.Length; i++)
        {
            MaxAbsLatents = Math.Max(MaxAbsLatents, Math.Abs((double)deviceLatents[i] - latentsOut[i]));
        }
    }
}

internal sealed class ProofReport
{
    public string OrtVersion { get; init; } = "";
    public string[] AvailableProviders { get; init; } = [];
    public string Machine { get; init; } = "";
    public bool Rehearsal { get; init; }
    public bool CudaAvailable { get; set; }
    public string? CudaError { get; set; }
    public string? DeviceProvider { get; set; }
    public string? Verdict { get; set; }
    public List<string> Failures { get; set; } = [];
    public List<ModelReport> Models { get; } = [];
}

internal sealed class ModelReport
{
    public string File { get; init; } = "";
    public int Resolution { get; set; }
    public string? LoadedOn { get; set; }
    public PlacementReport Placement { get; set; } = new();
    public List<ParityReport> Parity { get; } = [];
    public List<TimingReport> Timings { get; } = [];
    public List<string> Errors { get; } = [];
}

internal sealed class PlacementReport
{
    public bool StrictDynamicBatch { get; set; }
    public string? StrictDynamicBatchError { get; set; }
    public bool StrictFixedBatch { get; set; }
    public string? StrictFixedBatchError { get; set; }
    public int ProfiledNodes { get; set; }
    public Dictionary<string, int> NodesByProvider { get; } = [];
    public List<string> CpuNodes { get; } = [];
    public List<string> CpuFloatNodes { get; } = [];
    public List<string> MemcpyNodes { get; } = [];
}

internal sealed class ParityReport
{
    public int Steps { get; init; }
    public float Guidance { get; init; }
    public int Images { get; init; }
    public string CudaOptions { get; init; } = "";
    public bool ServiceOptions { get; init; }
    public double MaxAbsX0TeacherForced { get; set; }
    public double MaxAbsX0FreeRunning { get; set; }
    public double MaxAbsLatents { get; set; }
    public double MethodError { get; set; }
    public bool WithinTolerance { get; set; }
    public List<double> PerStepMaxAbsX0 { get; } = [];
}

internal sealed class TimingReport
{
    public string Variant { get; init; } = "";
    public int Batch { get; init; }
    public int Steps { get; init; }
    public int Rounds { get; init; }
    public double StepMs { get; init; }
    public double StepMsPerImage { get; init; }
    public double DenoiseMs { get; init; }
    public double BareRunMs { get; init; }
    public double OutsideDenoiseShare { get; init; }
    public string? Error { get; init; }
}

/// <summary>Command line of <c>--cuda-proof</c>.</summary>
internal sealed record ProofArguments(
    string[] Models, string Out, bool Rehearse, int[] ParityResolutions, int ParitySteps, int[] Batches, int Steps, int Rounds, bool Extras, int[] ExtraBatches)
{
    public const string Usage =
        "--cuda-proof --model FILE [--model FILE...] --out DIR [--rehearse] [--parity 64,512|none] [--parity-steps 20] "
        + "[--batches 1,4,16] [--steps 20] [--rounds 5] [--extras] [--extra-batches 1,16]";

    public static ProofArguments Parse(string[] args)
    {
        var models = new List<string>();
        string? output = null;
        bool rehearse = false, extras = false;
        int[] parity = [64, 512], batches = [1, 4, 16], extraBatches = [1, 16];
        int paritySteps = 20, steps = 20, rounds = 5;
        static int[] List(string text) => text == "none" ? [] : [.. text.Split(',').Select(t => int.Parse(t, CultureInfo.InvariantCulture))];
        for (var i = 0; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value ({Usage})");
            switch (args[i])
            {
                case "--model": models.Add(Value()); break;
                case "--out": output = Value(); break;
                case "--rehearse": rehearse = true; break;
                case "--extras": extras = true; break;
                case "--parity": parity = List(Value()); break;
                case "--parity-steps": paritySteps = int.Parse(Value(), CultureInfo.InvariantCulture); break;
                case "--batches": batches = List(Value()); break;
                case "--extra-batches": extraBatches = List(Value()); break;
                case "--steps": steps = int.Parse(Value(), CultureInfo.InvariantCulture); break;
                case "--rounds": rounds = int.Parse(Value(), CultureInfo.InvariantCulture); break;
                default: throw new ArgumentException($"unknown argument '{args[i]}' ({Usage})");
            }
        }

        if (models.Count == 0 || output is null)
        {
            throw new ArgumentException($"--model and --out are required ({Usage})");
        }

        return new ProofArguments([.. models], output, rehearse, parity, paritySteps, batches, steps, rounds, extras, extraBatches);
    }
}
