using System.Text.RegularExpressions;
using System.Xml.Linq;
using RinServe.WebApi.Hosting;

namespace RinServe.Deploy.Tests;

/// <summary>The Dockerfile read against the repo and the manifests; tests/container/image-test.sh builds and runs it for real.</summary>
public sealed class DockerfileTests
{
    private static readonly Dockerfile File = Dockerfile.InRepo;
    public static readonly TheoryData<string> Targets = ["cpu", "cuda"];

    /// <summary>APP_UID of the mcr.microsoft.com/dotnet/aspnet images (user "app"); the cuda target defines the same.</summary>
    private const string AspNetImageAppUid = "1654";

    [Fact]
    public void Cpu_and_cuda_targets_exist_and_a_plain_build_gives_cpu()
    {
        Assert.Equal("cpu", File.Stage("cpu").Name);
        Assert.Equal("cuda", File.Stage("cuda").Name);
        Assert.Equal("cpu", File.Stages[^1].Name);
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void Target_publishes_the_WebApi_project_framework_dependent_for_linux_x64(string target)
    {
        var publish = Runs(target).Where(r => r.Contains("dotnet publish", StringComparison.Ordinal)).ToArray();
        var command = Assert.Single(publish);
        var project = Regex.Match(command, @"dotnet publish (\S+)").Groups[1].Value;
        Assert.True(System.IO.File.Exists(Repo.PathOf(project)), $"publish names {project}, which is not in the repo");
        Assert.Equal("src/RinServe.WebApi/RinServe.WebApi.csproj", project);
        Assert.Contains("-c Release", command, StringComparison.Ordinal);
        Assert.Contains("-r linux-x64", command, StringComparison.Ordinal);
        Assert.Contains("--self-contained false", command, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("cpu", false)]
    [InlineData("cuda", true)]
    public void Only_the_cuda_target_restores_and_publishes_the_GPU_onnx_runtime(string target, bool gpu)
    {
        var dotnet = Runs(target).Where(r => r.Contains("dotnet restore", StringComparison.Ordinal) || r.Contains("dotnet publish", StringComparison.Ordinal)).ToArray();
        Assert.Equal(2, dotnet.Length);
        Assert.All(dotnet, command => Assert.Equal(gpu, command.Contains("-p:OnnxRuntimeGpu=true", StringComparison.Ordinal)));
        // The property switches packages in src/RinServe.Onnx; a property nothing reads would be a silent CPU build.
        Assert.Contains("'$(OnnxRuntimeGpu)' == 'true'", Repo.Read("src/RinServe.Onnx/RinServe.Onnx.csproj"), StringComparison.Ordinal);
    }

    [Fact]
    public void Restore_layer_copies_every_project_the_WebApi_needs_before_the_sources()
    {
        var baseStage = File.Stage("build-base");
        var copied = baseStage.All("COPY").SelectMany(Dockerfile.CopySources).ToHashSet(StringComparer.Ordinal);
        foreach (var project in ProjectClosure("src/RinServe.WebApi/RinServe.WebApi.csproj"))
        {
            Assert.Contains(project, copied);
        }
        Assert.Contains("Directory.Build.props", copied);
        Assert.Contains("Directory.Packages.props", copied);
        Assert.DoesNotContain(copied, c => c.TrimEnd('/') == "src");

        foreach (var target in new[] { "build-cpu", "build-cuda" })
        {
            var steps = File.Stage(target).Instructions.ToList();
            var restore = steps.FindIndex(i => i.Keyword == "RUN" && i.Arguments.Contains("dotnet restore", StringComparison.Ordinal));
            var sources = steps.FindIndex(i => i.Keyword == "COPY" && Dockerfile.CopySources(i).Contains("src/"));
            Assert.InRange(restore, 0, sources - 1);
        }
    }

    [Fact]
    public void Copied_paths_exist_in_the_repo_and_are_not_dockerignored()
    {
        var ignored = Repo.Read(".dockerignore").Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).ToArray();
        Assert.Contains("**/bin/", ignored);
        Assert.Contains("**/obj/", ignored);
        foreach (var copy in File.Stages.SelectMany(s => s.All("COPY")).Where(c => Dockerfile.CopyFrom(c) is null))
        {
            foreach (var source in Dockerfile.CopySources(copy))
            {
                Assert.True(System.IO.File.Exists(Repo.PathOf(source)) || Directory.Exists(Repo.PathOf(source)), $"{copy}: {source} is not in the repo");
                var top = source.TrimEnd('/').Split('/')[0];
                Assert.DoesNotContain(ignored, pattern => pattern.TrimEnd('/') == top || pattern.TrimEnd('/') == source.TrimEnd('/'));
            }
        }
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void Target_runs_as_the_non_root_user_the_pods_require(string target)
    {
        var stage = File.Stage(target);
        var user = Assert.Single(stage.All("USER")).Arguments;
        var uid = user == "$APP_UID" ? stage.Env.GetValueOrDefault("APP_UID", AspNetImageAppUid) : user;
        Assert.DoesNotContain(uid, new[] { "root", "0" });
        Assert.Equal("USER", stage.Instructions.Last(i => i.Keyword is "USER" or "RUN" or "COPY").Keyword);

        foreach (var workload in Manifests.Rendered(Manifests.Base).Where(o => o.Name is "rinserve-api" or "rinserve-worker" && o.Kind == "Deployment"))
        {
            Assert.Equal("true", workload.PodSpec!.Str("securityContext.runAsNonRoot"));
            Assert.Equal(uid, workload.PodSpec!.Str("securityContext.runAsUser"));
        }
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void Healthcheck_asks_a_liveness_route_the_app_maps_on_the_port_it_listens_on(string target)
    {
        var stage = File.Stage(target);
        var check = Assert.Single(stage.All("HEALTHCHECK")).Arguments;
        var url = Regex.Match(check, @"http://localhost:(?<port>[^/]+)(?<path>/\S*?)""?\s");
        Assert.True(url.Success, check);
        Assert.Contains(url.Groups["path"].Value, Repo.AppRoutes);
        Assert.Equal("/healthz/live", url.Groups["path"].Value);
        Assert.Equal("${ASPNETCORE_HTTP_PORTS}", url.Groups["port"].Value);
        // The image has an HTTP client for the check (the aspnet base has none).
        Assert.Contains(stage.All("RUN"), r => Regex.IsMatch(r.Arguments, @"apt-get install .*\bcurl\b"));
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void Exposed_port_is_the_port_the_app_listens_on_and_the_pods_declare(string target)
    {
        var stage = File.Stage(target);
        var port = stage.Env["ASPNETCORE_HTTP_PORTS"];
        Assert.Equal(port, Assert.Single(stage.All("EXPOSE")).Arguments);
        foreach (var deployment in Manifests.Rendered(Manifests.Base).Where(o => o.Kind == "Deployment"))
        {
            var container = Assert.Single(deployment.Containers);
            Assert.Equal(port, container.Maps("ports").Single(p => p.Str("name") == "http").Str("containerPort"));
            Assert.Contains(("ASPNETCORE_HTTP_PORTS", (string?)port), container.Env());
        }
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void Models_are_copied_to_the_models_path_the_image_configures(string target)
    {
        var stage = File.Stage(target);
        var copy = Assert.Single(stage.All("COPY"), c => Dockerfile.CopySources(c).Contains("models/"));
        Assert.Equal(stage.Env["RinServe__ModelsPath"].TrimEnd('/'), Dockerfile.CopyDestination(copy).TrimEnd('/'));
        Assert.Equal("/app", Assert.Single(stage.All("WORKDIR")).Arguments);
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void Image_role_and_execution_provider_are_valid_settings(string target)
    {
        var env = File.Stage(target).Env;
        Assert.True(Enum.TryParse<ServiceRole>(env["RinServe__Role"], ignoreCase: true, out var role), env["RinServe__Role"]);
        Assert.Equal(ServiceRole.All, role);
        Assert.Equal(target, env["Onnx__ExecutionProvider"]);
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void Entrypoint_runs_the_published_WebApi_assembly(string target)
    {
        var entrypoint = Assert.Single(File.Stage(target).All("ENTRYPOINT")).Arguments;
        var assembly = typeof(RinServeOptions).Assembly.GetName().Name + ".dll";
        Assert.Equal($"[\"dotnet\", \"{assembly}\"]", entrypoint);
    }

    [Fact]
    public void Cuda_target_builds_on_a_cuda_13_cudnn_9_runtime_image_with_the_aspnet_runtime()
    {
        var image = Assert.Single(File.Global, i => i.Keyword == "ARG" && i.Arguments.StartsWith("CUDA_IMAGE=", StringComparison.Ordinal)).Arguments;
        Assert.Matches(@"^CUDA_IMAGE=nvidia/cuda:13\.\d+\.\d+-cudnn-runtime-ubuntu24\.04$", image);
        var cuda = File.Stage("cuda");
        Assert.Equal("${CUDA_IMAGE}", cuda.BaseImage);
        Assert.Contains(cuda.All("COPY"), c => Dockerfile.CopyFrom(c) == "aspnet" && Dockerfile.CopySources(c).Contains("/usr/share/dotnet"));
        Assert.StartsWith("mcr.microsoft.com/dotnet/aspnet:10.0", File.DefaultBaseImage(File.Stage("aspnet")), StringComparison.Ordinal);
    }

    [Fact]
    public void Base_images_default_to_the_official_ones_and_are_overridable_only_by_build_arguments()
    {
        // FROM lines that are not stages of this file: the images a plain `docker build` pulls.
        var external = File.Stages.Where(s => !File.Stages.Any(o => o.Name == s.BaseImage)).ToArray();
        var defaults = external.ToDictionary(s => s.Name, File.DefaultBaseImage);
        Assert.Equal(new Dictionary<string, string>
        {
            ["build-base"] = "mcr.microsoft.com/dotnet/sdk:10.0",
            ["aspnet"] = "mcr.microsoft.com/dotnet/aspnet:10.0",
            ["cuda"] = "nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04",
        }, defaults);
        // Each one is a build argument (a mirror or the stand-ins of tests/container can replace it) ...
        Assert.All(external, s => Assert.Matches(@"^\$\{\w+\}$", s.BaseImage));
    }

    [Fact]
    public void No_syntax_directive_so_the_build_needs_no_frontend_image_from_a_registry()
    {
        // "# syntax=docker/dockerfile:1" makes BuildKit pull docker/dockerfile before anything else.
        Assert.DoesNotMatch(@"(?im)^#\s*syntax\s*=", Repo.Read("Dockerfile"));
    }

    private static IEnumerable<string> Runs(string target) =>
        File.Chain(target).SelectMany(s => s.All("RUN")).Select(r => r.Arguments);

    /// <summary>A project and every project it references, transitively, as repo-relative paths.</summary>
    private static IReadOnlySet<string> ProjectClosure(string project)
    {
        var found = new HashSet<string>(StringComparer.Ordinal);
        var todo = new Stack<string>([project]);
        while (todo.TryPop(out var current))
        {
            if (!found.Add(current))
            {
                continue;
            }
            var dir = Path.GetDirectoryName(current)!;
            foreach (var reference in XDocument.Load(Repo.PathOf(current)).Descendants("ProjectReference"))
            {
                var path = Path.GetRelativePath(Repo.Root, Repo.PathOf(Path.Combine(dir, reference.Attribute("Include")!.Value.Replace('\\', '/'))));
                todo.Push(path.Replace('\\', '/'));
            }
        }
        return found;
    }
}
