using RinServe.Diffusion;

namespace RinServe.Cli;

/// <summary>A one-line text progress bar on stderr, redrawn in place.</summary>
internal static class ProgressBar
{
    private const int Width = 40;

    public static void Draw(StepProgress progress, TimeSpan elapsed)
    {
        var filled = progress.Step * Width / progress.Steps;
        var perStep = elapsed.TotalSeconds / progress.Step;
        var left = perStep * (progress.Steps - progress.Step);
        Console.Error.Write(
            $"\r[{new string('#', filled)}{new string('.', Width - filled)}] {progress.Step}/{progress.Steps}  {perStep:F2} s/step  eta {left:F0} s ");
    }
}
