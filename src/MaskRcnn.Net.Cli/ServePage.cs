namespace MaskRcnn.Net.Cli;

/// <summary>
/// The page <c>maskrcnn serve</c> answers at <c>GET /</c>: drop (or choose) a JPEG/PNG, it is posted to
/// <c>/predict?overlay=png</c> and the returned overlay is shown at its natural size; a refusal shows the server's
/// JSON message. Plain HTML and JavaScript, nothing loaded from elsewhere.
/// </summary>
internal static class ServePage
{
    public const string Html = """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <title>maskrcnn serve</title>
        <style>
          body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
          #drop { border: 2px dashed #888; border-radius: 8px; padding: 1.5rem; text-align: center; max-width: 40rem; }
          #drop.over { border-color: #0a7; background: #efe; }
          #status { margin: 1rem 0; min-height: 1.2em; }
          #status.error { color: #b00; }
          #overlay { display: block; max-width: none; image-rendering: pixelated; }
          #overlay:not([src]) { display: none; }
        </style>
        </head>
        <body>
        <h1>maskrcnn serve</h1>
        <div id="drop">
          <p>Drop a JPEG or PNG image here, or choose one:</p>
          <input type="file" id="file" accept="image/jpeg,image/png">
        </div>
        <div id="status"></div>
        <img id="overlay" alt="the image with its detected objects drawn">
        <script>
        const drop = document.getElementById('drop');
        const input = document.getElementById('file');
        const status = document.getElementById('status');
        const overlay = document.getElementById('overlay');

        function show(text, isError) {
          status.textContent = text;
          status.className = isError ? 'error' : '';
        }

        async function predict(file) {
          overlay.removeAttribute('data-loaded');
          show('Predicting ' + file.name + '…', false);
          try {
            const response = await fetch('predict?overlay=png', {
              method: 'POST',
              headers: { 'Content-Type': file.type || 'application/octet-stream' },
              body: file,
            });
            if (!response.ok) {
              let message = response.status + ' ' + response.statusText;
              try { const body = await response.json(); message = response.status + ': ' + body.message; } catch (e) { }
              show(message, true);
              return;
            }
            const count = response.headers.get('X-Detections');
            const blob = await response.blob();
            if (overlay.src) { URL.revokeObjectURL(overlay.src); }
            overlay.onload = () => {
              overlay.setAttribute('data-loaded', 'true');
              show(file.name + ': ' + count + ' detection' + (count === '1' ? '' : 's'), false);
            };
            overlay.src = URL.createObjectURL(blob);
          } catch (e) {
            show('request failed: ' + e, true);
          }
        }

        input.addEventListener('change', () => { if (input.files.length > 0) { predict(input.files[0]); } });
        drop.addEventListener('dragover', e => { e.preventDefault(); drop.classList.add('over'); });
        drop.addEventListener('dragleave', () => drop.classList.remove('over'));
        drop.addEventListener('drop', e => {
          e.preventDefault();
          drop.classList.remove('over');
          if (e.dataTransfer.files.length > 0) { predict(e.dataTransfer.files[0]); }
        });
        </script>
        </body>
        </html>
        """;
}
